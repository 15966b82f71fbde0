"""router: `transcript`s -> `keystrokes` or model `request`s, deciding what each utterance means,
and typing utterances in the order they were spoken.

Consumes: `transcript` from asr, one at a time (the next waits until keys has typed the
last piece of the one before: one utterance at the keyboard, so order is kept); the
pieces of a model's answer (`keystrokes` from instruct and thinking); `voice` from vad.
Produces: `keystrokes` for keys (dictation, and each piece of a model's answer passed
on; empty and final when an utterance types nothing, so every utterance is answered),
a `request` for the model stage of its mode, and `cancel` for an answer being given
when the user speaks again (barge-in: chat and converse only -- dictated and clarified
speech is always typed).
Modes:
* *dictate* types what was said, joined to what came before (spacing, capitals), and
  obeys "new line", "new paragraph" and "scratch that" (erase the previous utterance);
* *clarify*, *chat* and *converse* hand the utterance to a model stage.
Dictation types `replacements` (config: what is heard -> what is typed) in place of
what Whisper wrote: names, jargon, "at sign" -> "@".
A spoken prefix picks the mode for one utterance ("Chat. What is..."; a name said on
its own, "Chat." then a pause vad ends the utterance at, picks it for the next one),
"switch to X mode" makes it stick, and so does `voxkey mode X` (control command `mode`).
Mode names are recognised by how they sound, as Whisper really writes them ("yet,",
"Conders,"): stages/router/modewords.py; `mode_words` in config are a user's own aliases. A long utterance
cut in parts by vad keeps the mode of its first part; a model hears it whole.
Partials (asr's words that have stopped changing while the speaker goes on) are typed
ahead in dictation only, and only once they cannot be the start of a command, a mode's
name or a switch; the utterance's final transcript then types what follows them (it
begins with them: asr makes it). Nothing typed ahead is ever erased.
"New conversation" (and `voxkey conversation new`, control command `new-conversation`)
counts the conversation up: each request carries the count, and the model stages start
chat and converse afresh when it changes.
Guarantees: a transcript that comes again gets the decision it got the first time; the
mode, the document, the decisions and the conversation count survive a restart (the
state file).
"""

import re
from dataclasses import dataclass, field

from bus.frames import Cancel, Frame, Keystrokes, Request, Transcript, Voice
from bus.stage import Stage, StageError, mark
from bus.state import expect
from bus.text import plain
from stages.router.modewords import MODES, exactly, may_name_a_mode, mode_prefix, named_alone, sounds_like

MODEL_STAGES = {"clarify": "instruct", "chat": "instruct", "converse": "thinking"}
INTERRUPTIBLE = ("chat", "converse")  # answers new speech may cut short; what the user said never is
RECENT_DECISIONS = 20  # repeats only ever concern the utterances still in flight
SENTENCE_END = (".", "!", "?", ":")
# Words that keep their capital in mid-sentence.
ALWAYS_CAPITAL = {"i", "i'm", "i've", "i'll", "i'd"}
SWITCH = re.compile(r"^(?:please )?(?:switch|change|go|set)(?: back)? (?:to|into) (\w+)(?: mode)?$")
# Words a partial may not begin with: the utterance could still become a command or a switch.
COMMAND_STARTS = {"switch", "change", "go", "set", "new", "scratch"}  # after a "please"
PARTIAL_MIN_WORDS = 3
NEW_CONVERSATION = re.compile(r"^(?:start )?(?:a )?new conversation$")


Vocabulary = list[tuple[re.Pattern, str]]
JOINS_WORD_BEFORE = set(".,;:!?)]}%@/-_'")
JOINS_WORD_AFTER = set("@/#$([{-_")


def vocabulary(replacements: dict) -> Vocabulary:
    """The `replacements` table as patterns, longest phrase first (so "at sign" is
    replaced before "sign"). A phrase matches whole words in any case, with the
    punctuation Whisper may put between its words ("at-sign", "at, sign")."""
    compiled = []
    for heard, typed in sorted(replacements.items(), key=lambda item: -len(item[0])):
        words = re.findall(r"[\w']+", heard)
        if not words:
            raise StageError(f"replacement {heard!r} has no words to listen for: fix [stages.router.replacements]")
        joined = r"[\s,;-]+".join(re.escape(word) for word in words)
        # Symbols hold on to their words as in writing: "name at sign example dot com"
        # -> "name@example.com", "hash tag release" -> "#release".
        before = r"\s*" if typed[:1] in JOINS_WORD_BEFORE else ""
        after = r"\s*" if typed[-1:] in JOINS_WORD_AFTER else ""
        pattern = rf"{before}\b{joined}\b{after}"
        compiled.append((re.compile(pattern, re.IGNORECASE), typed))
    return compiled


def replace_phrases(text: str, words: Vocabulary) -> str:
    for pattern, typed in words:
        text = pattern.sub(lambda _: typed, text)
    return text


@dataclass
class Edit:
    backspaces: int
    text: str


@dataclass
class Decision:
    mode: str  # the mode that handles `text`
    text: str
    sticky: str = ""  # a mode to switch to (nothing to type)
    cancel: bool = False  # "stop": cancel the model's answer, type nothing
    new_conversation: bool = False  # chat and converse start afresh; nothing to type
    next: str = ""  # a mode's name said on its own: the mode of the next utterance (nothing to type)


def spoken_command(text: str) -> str:
    """The command an utterance is, if it is only a command ("New line." -> "new line")."""
    phrase = plain(text)
    return {"newline": "new line"}.get(phrase, phrase)


def decide(text: str, sticky: str, mode_words: dict, stop_words: set) -> Decision:
    """What an utterance asks for. Pure: tested on what Whisper really writes. A mode's
    name is recognised by its sound (stages/router/modewords.py); `mode_words` are a user's
    aliases, which count like the names themselves."""
    said = plain(text)
    if spoken_command(text) in (*Dictation.COMMANDS, Dictation.SCRATCH):
        return Decision("dictate", text.strip())  # editing commands work in every mode
    if said in stop_words:
        return Decision(sticky, "", cancel=True)
    if NEW_CONVERSATION.match(said):
        return Decision(sticky, "", new_conversation=True)
    switch = SWITCH.match(said)
    named = switch and (exactly(switch.group(1), mode_words) or sounds_like(switch.group(1)))
    if named:
        return Decision(sticky, "", sticky=named)
    mode, rest = mode_prefix(text, mode_words)
    if mode:
        return Decision(mode, rest[0].upper() + rest[1:])
    alone = named_alone(text, mode_words)
    if alone:
        return Decision(sticky, "", next=alone)
    return Decision(sticky, text.strip())


def plainly_dictated(text: str, mode_words: dict, stop_words: set) -> bool:
    """Whether words typed ahead of the end of an utterance are dictation whatever
    follows them: not the start of a command, a mode's name or a switch."""
    said = plain(text).split()
    first = said[1] if said[:1] == ["please"] and len(said) > 1 else said[0] if said else ""
    if len(said) < PARTIAL_MIN_WORDS or first in COMMAND_STARTS or may_name_a_mode(text, mode_words):
        return False
    return decide(text, "dictate", mode_words, stop_words) == Decision("dictate", text.strip())


def join_to(previous: str, text: str) -> str:
    """`text` as it should be typed after `previous`: a separating space, and a
    capital only where a sentence begins."""
    text = text.strip()
    if not text:
        return ""
    at_line_start = previous == "" or previous.endswith("\n")
    sentence_begins = at_line_start or previous.rstrip().endswith(SENTENCE_END)
    first_word = text.split()[0]
    if sentence_begins:
        text = text[0].upper() + text[1:]
    elif first_word.lower().strip(",.") not in ALWAYS_CAPITAL and not first_word.isupper():
        text = text[0].lower() + text[1:]
    return text if at_line_start or previous.endswith(" ") else " " + text


@dataclass
class Dictation:
    """The document as voxkey typed it, one chunk per utterance: joins the next
    utterance to it, and erases the last chunk on "scratch that"."""

    typed: list[tuple[str, str]] = field(default_factory=list)  # (utterance id, text)
    memory: int = 100  # utterances "scratch that" can reach back through
    words: Vocabulary = field(default_factory=list)  # replacements

    COMMANDS = {"new line": "\n", "new paragraph": "\n\n"}
    SCRATCH = "scratch that"

    def hear(self, text: str, utt: str = "") -> Edit:
        command = spoken_command(text)
        if command == self.SCRATCH:
            _, erased = self.typed.pop() if self.typed else ("", "")
            return Edit(len(erased), "")
        chunk = self.COMMANDS.get(command)
        if chunk is None:
            return self.extend(utt, text)
        self.record(utt, chunk)
        return Edit(0, chunk)

    def extend(self, utt: str, text: str) -> Edit:
        """What to type so that the utterance reads `text`, after what was typed ahead of
        it (partials); never erasing. If the words typed ahead are not how `text` begins
        (asr lost them in a restart), what follows as many words is typed."""
        chunk = join_to(self._before(utt), replace_phrases(text, self.words))
        ahead = self.typed[-1][1] if utt and self.typed and self.typed[-1][0] == utt else ""
        if chunk.startswith(ahead):
            piece = chunk[len(ahead) :]
        else:
            rest = chunk.split()[len(ahead.split()) :]
            piece = " " + " ".join(rest) if rest else ""
        self.record(utt, piece)
        return Edit(0, piece)

    def _before(self, utt: str) -> str:
        """The text typed before the utterance (its own pieces typed ahead left out)."""
        own = utt and self.typed and self.typed[-1][0] == utt
        chunks = self.typed[:-1] if own else self.typed
        return chunks[-1][1] if chunks else ""

    def record(self, utt: str, text: str) -> None:
        """Text typed for an utterance, by us or by a model stage, piece by piece."""
        if not text:
            return
        if self.typed and utt and self.typed[-1][0] == utt:
            self.typed[-1] = (utt, self.typed[-1][1] + text)
        else:
            self.typed.append((utt, text))
            del self.typed[: -self.memory]

    def text_of(self, utt: str) -> str:
        """What is recorded for the utterance (empty if nothing, or if it was erased)."""
        return next((text for typed_utt, text in reversed(self.typed) if typed_utt == utt), "")

    def tail(self) -> str:
        return self.typed[-1][1] if self.typed else ""

    def lead(self) -> str:
        """What goes before a model's answer: a space unless at the start of a line."""
        tail = self.tail()
        return "" if tail == "" or tail.endswith(("\n", " ")) else " "


def check_state(saved: dict) -> None:
    expect(saved.get("mode") in MODES, "mode is not a mode")
    expect(isinstance(saved.get("typed"), list), "typed is not a list")
    for chunk in saved["typed"]:
        expect(
            isinstance(chunk, list) and len(chunk) == 2 and all(isinstance(x, str) for x in chunk),
            "typed holds a bad chunk",
        )
    expect(isinstance(saved.get("decided"), dict), "decided is not a map")
    for decided in saved["decided"].values():
        expect(
            isinstance(decided, dict) and ("keystrokes" in decided or "request" in decided), "a decision is malformed"
        )
    expect(isinstance(saved.get("parts"), dict), "parts is not a map")
    expect(type(saved.get("conversation", 0)) is int, "conversation is not a number")
    expect(saved.get("next_mode", "") in ("", *MODES), "next_mode is not a mode")


class Router(Stage):
    name = "router"
    topics = (Transcript.TOPIC, Keystrokes.TOPIC, Voice.TOPIC)
    sequential = (Transcript.TOPIC,)

    def setup(self) -> None:
        self.mode_words = {mode: set(words) for mode, words in self.settings["mode_words"].items()}
        self.stop_words = {plain(word) for word in self.settings["stop_words"]}
        saved = self.load_state(check_state)
        self.mode = self._valid_mode(saved.get("mode", self.settings["mode"]))
        self.document = Dictation(
            typed=[tuple(chunk) for chunk in saved.get("typed", [])],
            words=vocabulary(self.settings.get("replacements", {})),
        )
        # utterance id -> what was published for it, so a transcript that comes again is answered the same
        self.decided: dict[str, dict] = saved.get("decided", {})
        # a long utterance cut in parts: its mode, and for a model the text heard so far
        self.parts: dict = saved.get("parts", {})
        # Counted up on "new conversation": the model stages start afresh for a new number.
        self.conversation: int = saved.get("conversation", 0)
        # A mode's name said on its own ("Chat." then a pause vad ended the utterance at):
        # the mode of the next utterance, unless that one names its own.
        self.next_mode: str = saved.get("next_mode", "")
        self.typing_answer: dict[str, str] = {}  # utterance id -> mode, while a model's answer is being typed
        self.heard: dict = {}  # the last utterance decided, for `voxkey status` (flat: it goes in heartbeats)
        self._set_mode(self.mode)
        if saved:
            self.log.info("state restored", mode=self.mode, utterances=len(self.document.typed))

    def _save(self) -> None:
        self.decided = dict(list(self.decided.items())[-RECENT_DECISIONS:])
        self.save_state(
            {
                "mode": self.mode,
                "typed": self.document.typed,
                "decided": self.decided,
                "parts": self.parts,
                "conversation": self.conversation,
                "next_mode": self.next_mode,
            }
        )

    def _set_mode(self, mode: str) -> None:
        self.mode = self.state = mode
        self.progress = {"mode": mode, **{f"heard_{name}": value for name, value in self.heard.items()}}

    def _valid_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise StageError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        return mode

    def on_control(self, command: str, args: dict) -> str:
        if command == "new-conversation":
            return self._new_conversation("control")
        if command != "mode":
            return super().on_control(command, args)
        try:
            self.mode = self._valid_mode(str(args.get("mode", "")))
        except StageError as error:
            raise ValueError(str(error)) from None
        self._set_mode(self.mode)
        self._save()
        self.log.info("mode set", mode=self.mode, by="control")
        return f"mode {self.mode}"

    def _new_conversation(self, by: str) -> str:
        self.conversation += 1
        self._save()
        self.log.info("new conversation", number=self.conversation, by=by)
        return f"new conversation ({self.conversation})"

    # --- transform ---

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Keystrokes):
            return self._pass_on_answer(frame)
        marks = mark(frame.marks, "router")
        key = frame.key or frame.utt  # a partial's key names how many words it holds
        if key not in self.decided:
            self.decided[key] = self.ahead(frame) if frame.body.partial else self.decide(frame)
            self._save()
        else:
            self.log.info("transcript heard again: same decision", utt=frame.utt)
        decided = self.decided[key]
        if "request" in decided:
            request = Request(**decided["request"])
            self.publish(request, utt=frame.utt, marks=marks, to=MODEL_STAGES[request.mode], key=frame.utt)
            return
        keystrokes = Keystrokes(**decided["keystrokes"])
        if keystrokes.final or keystrokes.text:
            self.publish(keystrokes, utt=frame.utt, marks=marks, to="keys", key=f"{frame.utt}+{keystrokes.offset}")

    def ahead(self, frame: Frame) -> dict:
        """What to type of a partial: the words beyond those already typed, if the
        utterance is plainly dictation."""
        transcript: Transcript = frame.body
        if (
            self.mode != "dictate"
            or self.next_mode
            or transcript.part
            or self.parts
            or not plainly_dictated(transcript.text, self.mode_words, self.stop_words)
        ):
            return {"keystrokes": {"text": "", "final": False}}
        offset = len(self.document.text_of(frame.utt))
        edit = self.document.extend(frame.utt, transcript.text)
        self.log.info("typed ahead", utt=frame.utt, text=edit.text)
        return {"keystrokes": {"text": edit.text, "final": False, "offset": offset}}

    def decide(self, frame: Frame) -> dict:
        """What to publish for a transcript, as data (it is remembered)."""
        transcript: Transcript = frame.body
        if transcript.dropped or not transcript.text.strip():
            self.log.info("nothing to type", utt=frame.utt, dropped=transcript.dropped)
            self.heard = {"utt": frame.utt, "text": transcript.text.strip(), "dropped": transcript.dropped or "silence"}
            self._set_mode(self.mode)
            ahead = len(self.document.text_of(frame.utt))  # what partials typed stays
            return self._continued(transcript, "", frame.utt) or {"keystrokes": {"text": "", "offset": ahead}}
        continued = self._continued(transcript, transcript.text, frame.utt)
        if continued:
            return continued
        decision = decide(transcript.text, self.next_mode or self.mode, self.mode_words, self.stop_words)
        self.next_mode = decision.next
        self.log.info(
            "routed",
            utt=frame.utt,
            mode=decision.mode,
            sticky=decision.sticky,
            cancel=decision.cancel,
            text=decision.text,
            next=decision.next,
        )
        self.heard = {"utt": frame.utt, "text": transcript.text.strip(), "mode": decision.sticky or decision.mode}
        self._set_mode(decision.sticky or self.mode)
        if decision.sticky or decision.cancel or decision.next:
            return {"keystrokes": {"text": ""}}
        if decision.new_conversation:
            self._new_conversation("voice")
            return {"keystrokes": {"text": ""}}
        if not transcript.last_part:
            self.parts = {"mode": decision.mode, "text": decision.text}
            if decision.mode != "dictate":  # a model hears the utterance whole, at its last part
                return {"keystrokes": {"text": ""}}
        return self._for_mode(decision.mode, decision.text, frame.utt)

    def _continued(self, transcript: Transcript, text: str, utt: str) -> dict | None:
        """A later part of a long utterance: the mode of its first part."""
        if not transcript.part or not self.parts:
            return None
        mode = self.parts["mode"]
        if mode != "dictate":
            self.parts["text"] = f"{self.parts['text']} {text.strip()}".strip()
            text = self.parts["text"]
        if transcript.last_part:
            self.parts = {}
        elif mode != "dictate":
            return {"keystrokes": {"text": ""}}
        return self._for_mode(mode, text, utt) if text.strip() else {"keystrokes": {"text": ""}}

    def _for_mode(self, mode: str, text: str, utt: str) -> dict:
        if mode == "dictate":
            offset = len(self.document.text_of(utt))  # what partials typed ahead
            edit = self.document.hear(text, utt)
            return {"keystrokes": {"text": edit.text, "backspaces": edit.backspaces, "offset": offset}}
        return {
            "request": {"mode": mode, "text": text, "lead": self.document.lead(), "conversation": self.conversation}
        }

    def _pass_on_answer(self, frame: Frame) -> None:
        """A piece of a model's answer goes on to keys, at its place in the answer (keys
        types each place once, and never splices two different answers)."""
        piece: Keystrokes = frame.body
        known = self.document.text_of(frame.utt)
        if piece.offset <= len(known):  # a piece that comes again is recorded once
            self.document.record(frame.utt, piece.text[len(known) - piece.offset :])
        if piece.final:
            self.typing_answer.pop(frame.utt, None)
        elif piece.text and frame.utt in self.decided:
            self.typing_answer.setdefault(frame.utt, self.decided[frame.utt]["request"]["mode"])
        self._save()
        self.publish(
            Keystrokes(text=piece.text, final=piece.final, offset=piece.offset, by=frame.src),
            utt=frame.utt,
            marks=frame.marks,
            to="keys",
            key=f"{frame.utt}+{piece.offset}",
        )

    def signal(self, frame: Frame) -> None:
        """New speech while a chat or converse answer is being typed cuts it short (what
        was typed stays). An answer not begun yet is not cut: the user would get none,
        only because the model was slow to start or restarting."""
        if not isinstance(frame.body, Voice) or not frame.body.live:
            return  # in a replay faster than speech there is no "while"
        for utt, mode in list(self.typing_answer.items()):
            if mode in INTERRUPTIBLE:
                self.log.info("barge-in: cancelling the answer", utt=utt)
                self.publish(Cancel(reason="new speech"), utt=utt)
                del self.typing_answer[utt]
