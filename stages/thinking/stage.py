"""thinking: `request`s in converse mode -> `keystrokes`, with the Thinking model and local tools.

Consumes: `request` (mode converse), handed over reliably by the router; `cancel`.
Produces: `keystrokes` for the final answer only, handed over reliably to the router;
the reasoning goes to the log (never typed); a `generation` report per request.
The model reasons inside <think>...</think>, may call tools (stream.py parses the
stream as it comes), gets each result back and goes on. A doom-loop guard ends
thinking that runs over budget or repeats itself and forces an answer; an answer that
repeats itself is cut; when no answer can be had a short notice is typed instead.
The conversation so far (questions and answers, never the thinking) is in the prompt
and survives a restart (stages/llm/conversation.py, the state file).
Guarantees: nothing inside <think> and no tool call ever reaches the keyboard; tools
run in-process as plain functions (tools.py), never a shell or eval.
"""

from collections import Counter

from bus.frames import Frame
from stages.llm.stage import LlmStage, Metrics
from stages.thinking.stream import Answer, BadToolCall, DoomLoopGuard, StreamParser, Thought, ToolCall
from stages.thinking.tools import run_tool, tool_specs

END_THINKING = "\n</think>\n"


class Thinking(LlmStage):
    name = "thinking"
    modes = ("converse",)

    def tools(self) -> list[dict]:
        return tool_specs()

    def answer_reserve(self, mode: str) -> int:
        return super().answer_reserve(mode) + int(self.settings["thinking_budget_tokens"])

    def answer(self, frame: Frame, metrics: Metrics) -> tuple[str, str]:
        conversation = self.messages(frame)
        language = frame.body.language  # the answer is asked for in it (stages/llm/prompts.py)
        guard = DoomLoopGuard(int(self.settings["thinking_budget_tokens"]))
        calls_left = int(self.settings["max_tool_calls"])
        continuation = ""  # our own words put in the model's mouth: a forced end of thinking
        outcome, detail = "answered", ""
        while True:
            prompt = self.prompt("converse", conversation, self.tools(), language=language) + continuation
            generated, step = self.turn(frame, metrics, prompt, guard)
            kind, result = step
            if kind == "done":
                break
            if kind == "runaway" or (kind == "force" and continuation):
                outcome, detail = "guard", result
                break
            if kind == "force":
                # Close the reasoning ourselves, then let the model answer.
                continuation = generated + END_THINKING
                outcome, detail = "guard", result
                continue
            conversation += [
                {"role": "assistant", "content": continuation + generated},
                {"role": "tool", "content": result},
            ]
            continuation = ""
            calls_left -= 1
            if calls_left < 0:
                outcome, detail = "guard", "too many tool calls"
                break
        if not self.typed_any:
            self.type(frame, metrics, str(self.settings["failure_notice"]), said_by_model=False)
            outcome = "failed" if outcome == "answered" else outcome
        return outcome, detail

    def turn(self, frame: Frame, metrics: Metrics, prompt: str, guard: DoomLoopGuard) -> tuple[str, tuple[str, str]]:
        """Generate until the model finishes, calls a tool or trips the guard."""
        parser, generated, thought = StreamParser(), "", Counter()
        try:
            for piece in self.generate(frame, metrics, prompt):
                generated += piece
                step = self.take(frame, metrics, parser.feed(piece), guard, thought)
                if step:
                    return generated, step
            return generated, self.take(frame, metrics, parser.finish(), guard, thought) or ("done", "")
        finally:  # also when cancelled: how much it thought, never what (the model's words, the user's words)
            if thought["pieces"]:
                self.log.info("thought", utt=frame.utt, pieces=thought["pieces"], chars=thought["chars"])

    def take(
        self, frame: Frame, metrics: Metrics, events: list, guard: DoomLoopGuard, thought: Counter
    ) -> tuple[str, str] | None:
        for event in events:
            if isinstance(event, Thought):
                # The text only at debug level (not logged unless asked for): a log line per
                # piece at info would fill the logs, which live in RAM, with the user's matter.
                if not thought["pieces"]:
                    self.log.info("thinking", utt=frame.utt)  # it began: the log says so while it goes on
                thought.update(pieces=1, chars=len(event.text))
                self.log.debug("thinking", utt=frame.utt, text=event.text)
                reason = guard.observe_thinking(event.text)
                if reason:
                    return "force", reason
            elif isinstance(event, Answer):
                self.type(frame, metrics, event.text)
                reason = guard.observe_answer(event.text)
                if reason:
                    return "runaway", reason
            elif isinstance(event, ToolCall):
                result = run_tool(event.name, event.arguments)
                # Its arguments and result are the question's matter: their sizes at info only.
                self.log.info("tool", utt=frame.utt, name=event.name, ok=result.ok, chars=len(result.text))
                self.log.debug("tool", utt=frame.utt, raw=event.raw, text=result.text)  # the call, its result
                return "tool", result.text if result.ok else f"error: {result.text}"
            elif isinstance(event, BadToolCall):
                return "tool", f"error: the tool call {event.raw!r} is malformed ({event.error})"
        return None
