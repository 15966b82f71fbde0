"""router: `transcript`s -> `keystrokes`, deciding what each utterance means.

Consumes: `transcript`, `end`.
Produces: `keystrokes` (erase N characters, then type a text) marked `router`.
Modes: only *dictate* so far -- the text is typed with spacing and capitalization that
join it to what came before, and the spoken commands "new line", "new paragraph" and
"scratch that" (erase the previous utterance) are obeyed. Other modes plug in as
further `Mode` classes chosen by `mode`.
"""

import re
from dataclasses import dataclass, field

from bus.frames import Frame, Keystrokes, Transcript
from bus.stage import Stage, StageError, main, mark

SENTENCE_END = (".", "!", "?", ":")
# Words that keep their capital in mid-sentence.
ALWAYS_CAPITAL = {"i", "i'm", "i've", "i'll", "i'd"}


@dataclass
class Edit:
    backspaces: int
    text: str


def spoken_command(text: str) -> str:
    """The command an utterance is, if it is only a command ("New line." -> "new line")."""
    words = re.sub(r"[^\w' ]+", " ", text.lower()).split()
    phrase = " ".join(words)
    return {"newline": "new line"}.get(phrase, phrase)


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
    """Dictate mode: what was said is typed. Remembers what it typed, so it can join
    the next utterance to it and erase it on "scratch that"."""

    typed: list[str] = field(default_factory=list)
    memory: int = 100  # utterances "scratch that" can reach back through

    COMMANDS = {"new line": "\n", "new paragraph": "\n\n"}
    SCRATCH = "scratch that"

    def hear(self, text: str) -> Edit:
        command = spoken_command(text)
        if command == self.SCRATCH:
            erased = self.typed.pop() if self.typed else ""
            return Edit(len(erased), "")
        chunk = self.COMMANDS.get(command)
        if chunk is None:
            chunk = join_to(self._tail(), text)
        if chunk:
            self.typed.append(chunk)
            del self.typed[: -self.memory]
        return Edit(0, chunk)

    def _tail(self) -> str:
        return self.typed[-1] if self.typed else ""


MODES = {"dictate": Dictation}


class Router(Stage):
    name = "router"
    topics = (Transcript.TOPIC,)

    def setup(self) -> None:
        mode = self.settings["mode"]
        if mode not in MODES:
            raise StageError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        self.mode = MODES[mode]()

    def handle(self, frame: Frame) -> None:
        transcript: Transcript = frame.body
        if transcript.dropped or not transcript.text.strip():
            self.log.info("nothing to type", utt=frame.utt, dropped=transcript.dropped)
            return
        edit = self.mode.hear(transcript.text)
        self.publish(Keystrokes(text=edit.text, backspaces=edit.backspaces), utt=frame.utt, marks=mark(frame.marks, "router"))
        self.log.info("routed", utt=frame.utt, mode="dictate", text=edit.text, backspaces=edit.backspaces)


if __name__ == "__main__":
    main(Router)
