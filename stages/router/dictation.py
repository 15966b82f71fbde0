"""Dictation: the document as voxkey typed it, and how the next utterance joins it.

Pure: what to type for an utterance after what came before (a separating space, a
capital where a sentence begins), the spoken editing commands ("new line", "new
paragraph", "scratch that": erase the previous utterance), and the user's
`replacements` (what Whisper writes -> what is typed: names, jargon, "at sign" -> "@")."""

import re
from dataclasses import dataclass, field

from bus.stage import StageError
from bus.text import plain

SENTENCE_END = (".", "!", "?", ":")


# Words that keep their capital in mid-sentence.
ALWAYS_CAPITAL = {"i", "i'm", "i've", "i'll", "i'd"}


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
        text = pattern.sub(lambda _, typed=typed: typed, text)  # the replacement as it is: no \1 or \g<>
    return text


@dataclass
class Edit:
    backspaces: int
    text: str
    erases: str = ""  # the utterance whose text the backspaces erase


def spoken_command(text: str) -> str:
    """The command an utterance is, if it is only a command ("New line." -> "new line")."""
    phrase = plain(text)
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
            erased_utt, erased = self.typed.pop() if self.typed else ("", "")
            return Edit(len(erased), "", erases=erased_utt)
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
