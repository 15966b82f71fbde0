"""router: `transcript`s -> `keystrokes` or model `request`s, deciding what each utterance means.

Consumes: `transcript` from asr; `typed` from keys (what really reached the keyboard,
so "scratch that" can erase a model's answer too); `end`.
Produces: `keystrokes` (dictation; empty and final when an utterance types nothing, so
every utterance is answered) or a `request` (clarify, chat, converse).
Modes:
* *dictate* types what was said, joined to what came before (spacing, capitals), and
  obeys "new line", "new paragraph" and "scratch that" (erase the previous utterance);
* *clarify*, *chat* and *converse* hand the utterance to a model stage.
A spoken prefix picks the mode for one utterance ("Chat. What is..."), "switch to X
mode" makes it stick, and so does `voxkey mode X` (control command `mode`). Mode names
are matched as Whisper really writes them (`mode_words` in config).
Saying "stop" or "cancel" types nothing (the speech itself has already cancelled any
answer in progress: see vad).
Guarantees: a re-sent utterance gets the decision it got the first time; the mode and
the document memory survive a restart (bus/state.py).
"""

import collections
import re
from dataclasses import dataclass, field

from bus import state as persistence
from bus.frames import Frame, Keystrokes, Request, Transcript, Typed
from bus.stage import Stage, StageError, main, mark

MODES = ("dictate", "clarify", "chat", "converse")
RECENT_DECISIONS = 20  # re-sends only ever concern the utterance in flight
SENTENCE_END = (".", "!", "?", ":")
# Words that keep their capital in mid-sentence.
ALWAYS_CAPITAL = {"i", "i'm", "i've", "i'll", "i'd"}
SWITCH = re.compile(r"^(?:please )?(?:switch|change|go|set)(?: back)? (?:to|into) (\w+)(?: mode)?$")
PREFIX = re.compile(r"^\s*([\w']+)\s*([,.:;!?-]*)\s*(.*)$", re.S)


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


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def spoken_command(text: str) -> str:
    """The command an utterance is, if it is only a command ("New line." -> "new line")."""
    phrase = _plain(text)
    return {"newline": "new line"}.get(phrase, phrase)


def mode_named(word: str, mode_words: dict, exact_only: bool = False) -> str:
    word = word.lower()
    for mode in MODES:
        if word == mode or (not exact_only and word in mode_words.get(mode, ())):
            return mode
    return ""


def decide(text: str, sticky: str, mode_words: dict, stop_words: set) -> Decision:
    """What an utterance asks for. Pure: tested on what Whisper really writes."""
    plain = _plain(text)
    if spoken_command(text) in (*Dictation.COMMANDS, Dictation.SCRATCH):
        return Decision("dictate", text.strip())  # editing commands work in every mode
    if plain in stop_words:
        return Decision(sticky, "", cancel=True)
    switch = SWITCH.match(plain)
    if switch and mode_named(switch.group(1), mode_words):
        return Decision(sticky, "", sticky=mode_named(switch.group(1), mode_words))
    prefix = PREFIX.match(text)
    if prefix and prefix.group(3).strip():
        word, pause, rest = prefix.groups()
        # A mishearing ("yet") only counts with a pause after it; the name itself always.
        mode = mode_named(word, mode_words, exact_only=not pause)
        if mode:
            rest = rest.strip()
            return Decision(mode, rest[0].upper() + rest[1:])
    return Decision(sticky, text.strip())


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

    COMMANDS = {"new line": "\n", "new paragraph": "\n\n"}
    SCRATCH = "scratch that"

    def hear(self, text: str, utt: str = "") -> Edit:
        command = spoken_command(text)
        if command == self.SCRATCH:
            _, erased = self.typed.pop() if self.typed else ("", "")
            return Edit(len(erased), "")
        chunk = self.COMMANDS.get(command)
        if chunk is None:
            chunk = join_to(self.tail(), text)
        self.record(utt, chunk)
        return Edit(0, chunk)

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


class Router(Stage):
    name = "router"
    topics = (Transcript.TOPIC, Typed.TOPIC)

    def setup(self) -> None:
        self.mode_words = {mode: set(words) for mode, words in self.settings["mode_words"].items()}
        self.stop_words = {_plain(word) for word in self.settings["stop_words"]}
        self.state_path = persistence.path_for(self.config, self.name)
        saved = persistence.load(self.state_path)
        self.mode = self._valid_mode(saved.get("mode", self.settings["mode"]))
        self.document = Dictation(typed=[tuple(chunk) for chunk in saved.get("typed", [])])
        self.model_utts: collections.deque[str] = collections.deque(saved.get("model_utts", []), maxlen=Dictation.memory)
        # utterance id -> what was published for it, so a re-sent utterance is answered the same
        self.decided: dict[str, dict] = saved.get("decided", {})
        self.state = self.mode
        if saved:
            self.log.info("state restored", mode=self.mode, utterances=len(self.document.typed))

    def _save(self) -> None:
        recent = dict(list(self.decided.items())[-RECENT_DECISIONS:])
        self.decided = recent
        persistence.save(
            self.state_path,
            {"mode": self.mode, "typed": self.document.typed, "model_utts": list(self.model_utts), "decided": recent},
        )

    def _valid_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise StageError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        return mode

    def on_control(self, command: str, args: dict) -> str:
        if command != "mode":
            return super().on_control(command, args)
        try:
            self.mode = self._valid_mode(str(args.get("mode", "")))
        except StageError as error:
            raise ValueError(str(error)) from None
        self.state = self.mode
        self._save()
        self.log.info("mode set", mode=self.mode, by="control")
        return f"mode {self.mode}"

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Typed):
            # By position: an acknowledgement repeated after a keys restart adds only
            # what the document does not have yet.
            added = frame.body.unseen(self.document.text_of(frame.utt)) if frame.utt in self.model_utts else ""
            if added:
                self.document.record(frame.utt, added)
                self._save()
            return
        marks = mark(frame.marks, "router")
        if frame.utt not in self.decided:
            self.decided[frame.utt] = self.decide(frame)
            self._save()
        else:
            self.log.info("re-sent utterance: same decision", utt=frame.utt)
        decided = self.decided[frame.utt]
        body = Request(**decided["request"]) if "request" in decided else Keystrokes(**decided["keystrokes"])
        self.publish(body, utt=frame.utt, marks=marks)

    def decide(self, frame: Frame) -> dict:
        """What to publish for a transcript, as data (it is remembered)."""
        transcript: Transcript = frame.body
        if transcript.dropped or not transcript.text.strip():
            self.log.info("nothing to type", utt=frame.utt, dropped=transcript.dropped)
            return {"keystrokes": {"text": ""}}
        decision = decide(transcript.text, self.mode, self.mode_words, self.stop_words)
        self.log.info("routed", utt=frame.utt, mode=decision.mode, sticky=decision.sticky, cancel=decision.cancel, text=decision.text)
        if decision.sticky:
            self.mode = self.state = decision.sticky
            return {"keystrokes": {"text": ""}}
        if decision.cancel:
            return {"keystrokes": {"text": ""}}
        if decision.mode == "dictate":
            edit = self.document.hear(decision.text, frame.utt)
            return {"keystrokes": {"text": edit.text, "backspaces": edit.backspaces}}
        self.model_utts.append(frame.utt)
        return {"request": {"mode": decision.mode, "text": decision.text, "lead": self.document.lead()}}


if __name__ == "__main__":
    main(Router)
