"""The words of a language the router listens for: its spoken commands, stop words, mode
names, how "switch to X mode" is said, how it writes, how its spelling sounds. One data
table per language, stages/router/languages/<code>.toml; this module only reads them.

An utterance is read with the tables of the language asr heard it in and English's
(`hearing`): English is the language of voxkey's own words (the README, the CLI), and
a short English command said among German ones may well be written down as German.
Pure, apart from reading the tables once.
"""

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bus.stage import StageError
from bus.text import plain

TABLES = Path(__file__).parent / "languages"
ENGLISH_CODE = "en"
# What the commands do; a table says how each is said.
EDITS = {"new line": "\n", "new paragraph": "\n\n"}
SCRATCH = "scratch that"
NEW_CONVERSATION = "new conversation"
ACTIONS = (*EDITS, SCRATCH, NEW_CONVERSATION)


@dataclass(frozen=True)
class Switch:
    """How "switch to X mode" is said: a verb, joining words, and the word for "mode"
    before the name (fr "mode dictée"), after it (en "chat mode"), or glued to its end
    (de "Diktatmodus")."""

    polite: tuple[str, ...]
    verbs: frozenset[str]
    joins: frozenset[str]
    mode_word: str
    mode_word_first: bool
    mode_word_glued: bool


@dataclass(frozen=True)
class Sounds:
    """How the language's spelling sounds: stages/router/modewords.py's sound keys."""

    spellings: tuple[tuple[str, str], ...]
    silent_final_e: bool
    soft_c: str
    soft_g: str


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    commands: dict[str, str]  # the phrase said (plain words) -> the action it names (ACTIONS)
    stop_words: frozenset[str]
    mode_names: dict[str, tuple[str, ...]]  # mode -> what speakers call it
    switch: Switch
    always_capital: frozenset[str]
    keep_case: bool
    sounds: Sounds

    @classmethod
    def from_table(cls, code: str, table: dict) -> "Language":
        commands = {}
        for action, phrases in table["commands"].items():
            if action not in ACTIONS:
                raise StageError(f"{code}.toml: unknown command {action!r}: use one of {', '.join(ACTIONS)}")
            commands.update((plain(phrase), action) for phrase in phrases)
        switch, writing, sounds = table["switch"], table["writing"], table["sounds"]
        return cls(
            code=code,
            name=table["name"],
            commands=commands,
            stop_words=frozenset(plain(word) for word in table["stop_words"]),
            mode_names={mode: tuple(plain(name) for name in names) for mode, names in table["modes"].items()},
            switch=Switch(
                polite=tuple(plain(word) for word in switch["polite"]),
                verbs=frozenset(switch["verbs"]),
                joins=frozenset(switch["joins"]),
                mode_word=switch["mode_word"],
                mode_word_first=switch["mode_word_first"],
                mode_word_glued=switch["mode_word_glued"],
            ),
            always_capital=frozenset(writing["always_capital"]),
            keep_case=writing["keep_case"],
            sounds=Sounds(
                spellings=tuple((spelling, sound) for spelling, sound in sounds["spellings"]),
                silent_final_e=sounds["silent_final_e"],
                soft_c=sounds["soft_c"],
                soft_g=sounds["soft_g"],
            ),
        )

    def names(self, mode: str) -> tuple[str, ...]:
        return self.mode_names.get(mode, ())

    def command(self, said: str) -> str:
        """The action the plain words `said` name, or ""."""
        return self.commands.get(said, "")

    def unpolite(self, said: str) -> str:
        """The plain words `said` without a "please" before or after them."""
        for word in self.switch.polite:
            if said.startswith(word + " "):
                said = said[len(word) + 1 :]
            if said.endswith(" " + word):
                said = said[: -len(word) - 1]
        return said


def known() -> list[str]:
    """The language codes the router has a table for."""
    return sorted(path.stem for path in TABLES.glob("*.toml"))


@cache
def language(code: str) -> Language:
    """The table for `code` ("de", "de-AT"); English's when there is none: the router then
    hears voxkey's English commands only, and types everything else as said."""
    code = code.strip().lower().replace("_", "-").partition("-")[0] or ENGLISH_CODE
    path = TABLES / f"{code}.toml"
    if not path.is_file():
        code, path = ENGLISH_CODE, TABLES / f"{ENGLISH_CODE}.toml"
    with path.open("rb") as file:
        return Language.from_table(code, tomllib.load(file))


def hearing(code: str = ENGLISH_CODE) -> tuple[Language, ...]:
    """The tables an utterance heard in `code` is read with: its own first, then English's."""
    own = language(code)
    return (own,) if own.code == ENGLISH_CODE else (own, language(ENGLISH_CODE))


ENGLISH = hearing()


def command_of(text: str, languages: tuple[Language, ...] = ENGLISH) -> str:
    """The action an utterance is when it is nothing but a command ("Neue Zeile." ->
    "new line"), or ""."""
    said = plain(text)
    return next((action for lang in languages if (action := lang.command(said))), "")


def stop_words_of(languages: tuple[Language, ...]) -> frozenset[str]:
    return frozenset().union(*(lang.stop_words for lang in languages))


def may_become_a_command(said: list[str], languages: tuple[Language, ...] = ENGLISH) -> bool:
    """Whether the plain words `said`, typed ahead of the end of the utterance, could
    still turn out to be a command or a switch: they begin with a switch's verb, or they
    and a command's phrase begin alike ("Start a new", "New line and": the end of an
    utterance may take words back)."""
    for lang in languages:
        words = lang.unpolite(" ".join(said)).split()
        if words[:1] and words[0] in lang.switch.verbs:
            return True
        for phrase in map(str.split, lang.commands):
            if words[: len(phrase)] == phrase or phrase[: len(words)] == words:
                return True
    return False
