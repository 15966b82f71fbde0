"""What the language-model stages share: finding and loading a GGUF, laying out prompts
from data (stages/llm/prompts.py over models/prompts.toml) in the language spoken, with
the conversation so far (stages/llm/conversation.py),
streaming a completion that a cancel can stop between any two tokens, making model
output safe to type, and measuring each request.

A stage built on :class:`LlmStage` names the modes it serves and implements
``answer(frame)``; everything else is here.
"""

import collections
import ctypes
import gc
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bus import models
from bus.delivery import piece_key
from bus.frames import Cancel, Frame, Generation, Keystrokes, Request, now_ns
from bus.stage import Stage, StageError
from bus.text import safe_text
from stages.llm import scripted_engine
from stages.llm.conversation import Conversation, Conversations, Turn, as_messages, window
from stages.llm.prompts import PromptBook, load_prompts

EMBEDDED_MODEL = "smollm2-135m"


class Cancelled(Exception):
    pass


class TimedOut(Exception):
    pass


def embedded_gguf() -> Path:
    return models.built_in_path(EMBEDDED_MODEL)


def resolve_model(name: str) -> Path:
    """The embedded model, a model from models/manifest.toml by name, or a GGUF path
    (bus/models.py: resolve)."""
    try:
        return models.resolve(name, Path.is_file, "GGUF model file")
    except models.ModelError as error:
        raise StageError(str(error)) from None


@dataclass
class Metrics:
    """Per-request timings, from the moment the request was taken up."""

    mode: str
    started_ns: int = field(default_factory=now_ns)
    prompt_tokens: int = 0
    tokens: int = 0
    first_token_ns: int = 0
    last_token_ns: int = 0
    first_typed_ns: int = 0

    def token(self) -> None:
        self.tokens += 1
        self.last_token_ns = now_ns()
        if not self.first_token_ns:
            self.first_token_ns = self.last_token_ns

    def typed(self) -> None:
        if not self.first_typed_ns:
            self.first_typed_ns = now_ns()

    def report(self, outcome: str, detail: str = "") -> Generation:
        end = now_ns()

        def ms(t: int) -> float:
            return round((t - self.started_ns) / 1e6, 2) if t else 0.0

        # Decoding ends at the last token: what follows (saving the conversation, the
        # report) is not the engine's speed.
        decoding_s = (self.last_token_ns - self.first_token_ns) / 1e9 if self.first_token_ns else 0.0
        return Generation(
            mode=self.mode,
            outcome=outcome,
            prompt_tokens=self.prompt_tokens,
            tokens=self.tokens,
            ttft_ms=ms(self.first_token_ns),
            first_typed_ms=ms(self.first_typed_ns),
            tokens_per_s=round((self.tokens - 1) / decoding_s, 1) if self.tokens > 1 and decoding_s > 0 else 0.0,
            total_ms=ms(end),
            detail=detail,
        )


class ModeStates:
    """What the engine has evaluated, kept per mode, for a stage that serves several.

    llama.cpp reuses only the longest prefix a prompt shares with what it evaluated last,
    and the modes' prompts differ from their first tokens (each has its own system
    prompt): a clarify between two chat turns made the second evaluate its whole
    conversation again. So when a request of another mode comes, the state of the mode
    leaving is kept (its tokens and their cells in llama.cpp's cache, ~22 KB a token on
    SmolLM2, at most `conversation_tokens` of them) and the arriving mode's is put back;
    llama-cpp-python's own prefix matching does the rest.
    """

    def __init__(self, llm):
        self.llm = llm
        self.kept: dict[str, tuple] = {}  # mode -> (tokens, state buffer, its length)
        self.holding = ""  # the mode whose state the engine holds

    def enter(self, mode: str) -> None:
        if mode == self.holding:
            return
        if self.holding:
            self.kept[self.holding] = self._save()
        if mode in self.kept:
            self._restore(*self.kept.pop(mode))
        self.holding = mode

    def _save(self) -> tuple:
        import llama_cpp

        context = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(context, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(context, buffer, size, 0)
        return self.llm.input_ids[: self.llm.n_tokens].copy(), buffer, written

    def _restore(self, tokens, buffer, written: int) -> None:
        import llama_cpp

        self.llm.reset()  # what the engine holds now is the other mode's
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if not written or llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buffer, written, 0) != written:
            self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)  # not restored: the prompt is evaluated afresh
            return
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)
        # The logits are not the restored state's: llama-cpp-python must decode at least
        # one token before it samples.
        self.llm._requires_eval = True


class LlmStage(Stage):
    modes: tuple[str, ...] = ()

    def setup(self) -> None:
        self.llm, path = self.open_model()
        self.book = PromptBook.for_model(self.llm.metadata, str(self.settings.get("format") or ""), load_prompts())
        self.cancelled: collections.deque[str] = collections.deque(maxlen=100)
        self.allow_newlines = bool(self.settings.get("allow_newlines", False))
        self.conversations = self.load_state(Conversations).conversations
        self.mode_states = (
            ModeStates(self.llm)
            if len(self.modes) > 1 and not scripted_engine.is_scripted(str(self.settings["model"]))
            else None
        )
        # The first evaluation pays for lazy initialisation: pay it before reporting ready.
        # Evaluating each mode's system prompt does more: llama.cpp keeps the longest
        # prefix a new prompt shares with the last one evaluated, so a mode's first request
        # starts after it (the Thinking model's system prompt and tool list are ~400 tokens).
        for mode in self.modes:
            self.enter(mode)
            self.llm.create_completion(self.warm_up_prompt(mode), max_tokens=1)
        self.log.info("model", path=str(path), family=self.book.family)

    def enter(self, mode: str) -> None:
        """Give the engine the state of `mode` (see ModeStates)."""
        if self.mode_states:
            self.mode_states.enter(mode)

    def open_model(self):
        """The engine and where it came from: llama.cpp with a GGUF, or, for tests of
        what no embedded model does, a script played in its place (stages/llm/scripted_engine.py)."""
        name, context = str(self.settings["model"]), int(self.settings["context_tokens"])
        if scripted_engine.is_scripted(name):
            try:
                script = scripted_engine.load(name)
            except scripted_engine.ScriptError as error:
                raise StageError(str(error)) from None
            return scripted_engine.ScriptedLlama(script, context, self.log), script.path
        from llama_cpp import Llama

        path = resolve_model(name)
        try:
            llm = Llama(
                model_path=str(path),
                n_ctx=context,
                n_threads=self.threads,
                n_threads_batch=self.batch_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise StageError(
                f"model file {path} cannot be loaded ({error}): run `voxkey models fetch` to replace it"
            ) from None
        return llm, path

    # --- the request life cycle ---

    def handle(self, frame: Frame) -> None:
        request: Request = frame.body
        if request.mode not in self.modes:
            return
        metrics = Metrics(request.mode)
        self.typed_any = False
        self.offset = 0
        self.answer_text = ""  # the model's answer as it wrote it, for the conversation
        self.window: list[Turn] = []  # the earlier turns its prompt held
        try:
            outcome, detail = self.answer(frame, metrics)
        except Cancelled:
            outcome, detail = "cancelled", ""
        except Exception as error:  # a model failure must not take the stage down
            self.log.exception("generation failed", utt=frame.utt)
            outcome, detail = "failed", f"{type(error).__name__}: {error}"
        if outcome != "failed":
            self.remember(frame)
        # The report goes before the final piece, on the same socket: whoever has the
        # final keystroke can count on the report having been sent.
        report = metrics.report(outcome, detail)
        self.publish(report, utt=frame.utt, marks=frame.marks)
        self.type(frame, metrics, "", final=True)
        collect_ms = self.release_engine_memory()
        self.log.info(
            "generation",
            utt=frame.utt,
            **{k: v for k, v in vars(report).items() if k != "detail"},
            detail=detail,
            collect_ms=collect_ms,
        )

    @staticmethod
    def release_engine_memory() -> float:
        """A full garbage collection, once the answer is out; how long it took (ms).

        llama-cpp-python makes a sampler chain for every completion and drops the last
        one in a reference cycle (its finaliser is a closure over itself). Each chain holds
        native memory, a token buffer the size of the vocabulary (~0.6 MB on SmolLM2),
        that Python's collector cannot see, so it weighs nothing towards a collection:
        the cycles waited for the rare full ones and RSS climbed in steps all day."""
        started = time.perf_counter()
        gc.collect()
        return round((time.perf_counter() - started) * 1e3, 2)

    def signal(self, frame: Frame) -> None:
        if isinstance(frame.body, Cancel):
            # Logged: where generation stood when the cancel was taken is in the log.
            self.log.info("cancel taken", utt=frame.utt, reason=frame.body.reason)
            self.cancelled.append(frame.utt)

    def answer(self, frame: Frame, metrics: Metrics) -> tuple[str, str]:
        raise NotImplementedError

    def tools(self) -> list[dict] | None:
        """The tools listed in the system prompt."""
        return None

    def answer_reserve(self, mode: str) -> int:
        """Tokens of the context kept free for the answer."""
        return self.book.max_tokens(mode)

    def warm_up_prompt(self, mode: str) -> str:
        """What to evaluate before reporting ready: the start every prompt of `mode` shares."""
        return self.prompt(mode, [], self.tools(), generation=False)

    # --- services for answer() ---

    def prompt(
        self,
        mode: str,
        messages: list[dict],
        tools: list[dict] | None = None,
        generation: bool = True,
        language: str = "",
    ) -> str:
        return self.book.prompt(mode, messages, tools, generation, language)

    def request_prompt(self, frame: Frame) -> str:
        """The prompt a request is answered with: its messages (self.messages), in its language."""
        return self.prompt(frame.body.mode, self.messages(frame), self.tools(), language=frame.body.language)

    def user_message(self, mode: str, text: str) -> dict:
        return self.book.user(mode, text)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def messages(self, frame: Frame) -> list[dict]:
        """What the request asks: in a mode that keeps a conversation, preceded by the
        window of the turns before it that fits the conversation's budget and leaves the
        context room for the answer."""
        request: Request = frame.body
        question = self.user_message(request.mode, request.text)
        if not self.book.modes[request.mode].get("conversation"):
            return [question]
        turns = self.conversation(request).before(frame.utt)
        room = min(
            int(self.settings["conversation_tokens"]),
            int(self.settings["context_tokens"]) - self.answer_reserve(request.mode),
        )

        def asked(text: str) -> dict:
            return self.user_message(request.mode, text)

        def tokens(kept: list[Turn]) -> int:
            messages = [*as_messages(kept, asked), question]
            return self.count_tokens(self.prompt(request.mode, messages, self.tools(), language=request.language))

        self.window = window(turns, lambda kept: tokens(kept) <= room, lambda kept: tokens(kept) <= room // 2)
        return [*as_messages(self.window, asked), question]

    def conversation(self, request: Request) -> Conversation:
        return self.conversations.get(request.mode, Conversation()).for_request(request.conversation)

    def remember(self, frame: Frame) -> None:
        """Keep the answer given (never the thinking) for the requests that follow; saved
        before the final piece goes out, so a follow-up always finds it."""
        request: Request = frame.body
        if not self.book.modes[request.mode].get("conversation") or not self.answer_text.strip():
            return
        conversation = self.conversation(request)
        conversation.remember(frame.utt, request.text, self.answer_text.strip(), self.window)
        self.conversations[request.mode] = conversation
        self.save_state(Conversations(self.conversations))

    def generate(self, frame: Frame, metrics: Metrics, prompt: str, timeout_s: float = 0.0) -> Iterator[str]:
        """Stream text pieces. Between any two tokens a cancel stops it (Cancelled), as
        does the time limit (TimedOut)."""
        if frame.utt in self.cancelled:  # cancelled while it waited
            raise Cancelled()
        mode = frame.body.mode
        metrics.prompt_tokens += self.count_tokens(prompt)
        self.enter(mode)
        stream = self.llm.create_completion(
            prompt,
            max_tokens=self.book.max_tokens(mode),
            temperature=float(self.settings["temperature"]),
            top_k=int(self.settings["top_k"]),
            top_p=float(self.settings["top_p"]),
            stop=self.book.stop(mode),
            # Seeded by the utterance: a request sent again after a crash usually gets
            # the same answer, so keys skips what it already typed (and where the new
            # answer differs, keys keeps the old one rather than splice the two).
            seed=zlib.crc32(frame.utt.encode()),
            stream=True,
        )
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            for chunk in stream:
                metrics.token()
                yield chunk["choices"][0]["text"]
                self.interrupted()
                if frame.utt in self.cancelled:
                    raise Cancelled()
                if deadline and time.monotonic() > deadline:
                    raise TimedOut()
        finally:
            stream.close()

    def type(self, frame: Frame, metrics: Metrics, text: str, final: bool = False, said_by_model: bool = True) -> None:
        """Send model text to the keyboard: made safe, the request's lead before the first.
        What the model said is kept for the conversation; our own notices are not."""
        if said_by_model:
            self.answer_text += text
        text = safe_text(text, self.allow_newlines)
        if not self.typed_any:
            text = text.lstrip()
            if not text and not final:
                return
            text = frame.body.lead + text if text else ""
        if not text and not final:
            return
        if text:
            self.typed_any = True
            metrics.typed()
        marks = {**frame.marks, "llm_first_token": metrics.first_token_ns or now_ns()}
        self.publish(
            Keystrokes(text=text, final=final, offset=self.offset),
            utt=frame.utt,
            marks=marks,
            key=piece_key(frame.utt, self.offset),
        )
        self.offset += len(text)
