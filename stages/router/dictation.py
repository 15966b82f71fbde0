"""Dictation: the document as voxkey typed it, and how the next utterance joins it.

Pure: what to type for an utterance after what came before (a separating space, a
capital where a sentence begins), the spoken editing commands ("new line", "new
paragraph", "scratch that": erase the previous utterance; said in the utterance's
language, stages/router/language.py), and the user's `replacements` (what Whisper
writes -> what is typed: names, jargon, "at sign" -> "@"), for every language or one."""

import re
from dataclasses import dataclass, field

from bus.stage import StageError
from stages.router.language import EDITS, ENGLISH, SCRATCH, command_of
from stages.router.modewords import Hearing

SENTENCE_END = (".", "!", "?", ":")


Vocabulary = list[tuple[re.Pattern, str]]
EVERY_LANGUAGE = ""  # the key of the replacements that hold whatever the language


JOINS_WORD_BEFORE = set(".,;:!?)]}%@/-_'")


JOINS_WORD_AFTER = set("@/#$([{-_")


def vocabularies(replacements: dict) -> dict[str, Vocabulary]:
    """The `replacements` table by language: a phrase for every language, or a table of
    them under a language's code ([stages.router.replacements.de]), which adds to those
    and overrides the same phrase."""
    common = {heard: typed for heard, typed in replacements.items() if isinstance(typed, str)}
    own = {code: table for code, table in replacements.items() if isinstance(table, dict)}
    for code, table in own.items():
        odd = [heard for heard, typed in table.items() if not isinstance(typed, str)]
        if odd:
            fix = f"fix [stages.router.replacements.{code}]"
            raise StageError(f"replacement {odd[0]!r} under {code!r} is not text: {fix}")
    return {EVERY_LANGUAGE: vocabulary(common)} | {code: vocabulary(common | table) for code, table in own.items()}


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


def capitalised(text: str) -> str:
    """`text` with its first letter in capitals ("¿cuál..." -> "¿Cuál...")."""
    first = next((i for i, char in enumerate(text) if char.isalpha()), None)
    return text if first is None else text[:first] + text[first].upper() + text[first + 1 :]


def join_to(previous: str, text: str, languages: Hearing = ENGLISH) -> str:
    """`text` as it should be typed after `previous`: a separating space, and a
    capital only where a sentence begins (in mid-sentence, the language's words that
    keep theirs do, and in German every word keeps the case Whisper gave it)."""
    text = text.strip()
    if not text:
        return ""
    at_line_start = previous == "" or previous.endswith("\n")
    sentence_begins = at_line_start or previous.rstrip().endswith(SENTENCE_END)
    first_word = text.split()[0]
    if sentence_begins:
        text = capitalised(text)
    elif (
        not languages[0].keep_case
        and first_word.lower().strip(",.") not in languages[0].always_capital
        and not first_word.isupper()
    ):
        text = text[0].lower() + text[1:]
    return text if at_line_start or previous.endswith(" ") else " " + text


@dataclass
class Dictation:
    """The document as voxkey typed it, one chunk per utterance: joins the next
    utterance to it, and erases the last chunk on "scratch that"."""

    typed: list[tuple[str, str]] = field(default_factory=list)  # (utterance id, text)
    memory: int = 100  # utterances "scratch that" can reach back through
    words: dict[str, Vocabulary] = field(default_factory=dict)  # replacements, by language (vocabularies)

    def hear(self, text: str, utt: str = "", languages: Hearing = ENGLISH) -> Edit:
        command = command_of(text, languages)
        if command == SCRATCH:
            erased_utt, erased = self.typed.pop() if self.typed else ("", "")
            return Edit(len(erased), "", erases=erased_utt)
        chunk = EDITS.get(command)
        if chunk is None:
            return self.extend(utt, text, languages)
        self.record(utt, chunk)
        return Edit(0, chunk)

    def extend(self, utt: str, text: str, languages: Hearing = ENGLISH) -> Edit:
        """What to type so that the utterance reads `text`, after what was typed ahead of
        it (partials); never erasing. If the words typed ahead are not how `text` begins
        (asr lost them in a restart), what follows as many words is typed."""
        words = self.words.get(languages[0].code, self.words.get(EVERY_LANGUAGE, []))
        # Joined first, then replaced: the case of Whisper's first word is decided, and a
        # replacement's own ("iPhone", "VoxKey") is typed as written.
        chunk = replace_phrases(join_to(self._before(utt), text, languages), words)
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
