"""Which mode an utterance's first words name, judged by how they sound.

Whisper tiny.en writes a spoken mode name the way it hears it: "Chat." comes out as
"yet,", "Converse." as "Congress," or "Conders,", sometimes as two words ("Con verse,").
A list of such mishearings only ever covers the recordings it was made from. Instead,
each word is reduced to a sound key (its language's spelling -> a few classes of sounds:
all vowels alike, "ch"/"j"/"sh" alike, silent letters dropped; the spelling rules and
the names are data, stages/router/languages/*.toml), and the key is compared with each
mode name's by an edit distance in which near sounds ("t"/"d", "f"/"v",
"ch"/"y") and vowels cost little, and sounds added at the end of the name cost much (a
longer word made from the name -- "conversely", "chatting", "clarity" -- is another
word, not a mishearing).

The rules that keep dictation dictation:
* a name counts only when it stands apart from what follows: a pause after it in the
  audio (asr's word timings, `pauses_ms`), not only a comma Whisper may write. "Chat
  logs show three errors." uses the word, said straight on, and is dictated whole;
  "Chat. What is..." names the mode;
* the mode's own name, or a user's `aliases`, needs nothing more than that pause;
* any other word also needs Whisper to have heard the pause (a punctuation mark after
  it: "Conders, what is...") and to sound close enough to a name;
* two words heard for one name ("Con verse,") count like one word, under the same rule;
* a name said on its own ("Jet.", cut off by vad at the pause after it) names the mode
  of the utterance that follows.
Without word timings (a transcript from elsewhere), the punctuation mark is the pause.
Pure: values in, values out.
"""

import re
import unicodedata
from functools import lru_cache

from stages.router.language import ENGLISH, Language, Sounds

MODES = ("dictate", "clarify", "chat", "converse")
Hearing = tuple[Language, ...]  # the languages an utterance is read in (stages/router/language.py)
# How far a word's sound key may be from a mode name's, per sound of the name. Chosen on
# the `tune` half of tests/audio/modes (voxkey bench --modes): between the farthest
# mishearing of a name ("Congress," 0.27) and the nearest look-alike that is not one
# ("Concerts," 0.29). Nearer look-alikes ("Yet,", "Chad,", "Clarity," at 0.13-0.14)
# cannot be told from the names by their words alone.
MAX_DISTANCE = 0.28
VOWEL = "a"
# Sounds heard for one another: a substitution within a group costs NEAR.
NEAR_GROUPS = ("pb", "td", "kgx", "fv", "bv", "sz", "JyS", "mnN", "Tfd", "lr")
NEAR = 0.4
VOWEL_COST = 0.25  # a vowel inserted or dropped: Whisper changes vowels freely
TAIL_FACTOR = 2.0  # sounds added after the end of the name: another word, not a mishearing
SOFT = set("eiy")


def _letter(char: str) -> str:
    """A letter without its accent ("é" -> "e"): the accents a table does not spell."""
    return unicodedata.normalize("NFKD", char)[0]


@lru_cache(maxsize=4096)
def sound_key(word: str, sounds: Sounds = ENGLISH[0].sounds) -> str:
    """A word's sounds as classes, by a language's spelling ("chat" -> "Jat", "yet" ->
    "yat", "converse" -> "kanvars" in English; "Gespräch" -> "gaSprax" in German)."""
    word = "".join(char for char in word.lower() if char.isalpha())
    if sounds.silent_final_e and len(word) > 3 and word.endswith("e") and word[-2] not in "aeiouy":
        word = word[:-1]  # a silent final e ("converse", "dictate")
    key, i = [], 0
    while i < len(word):
        for spelling, sound in sounds.spellings:
            if word.startswith(spelling, i):
                key.append(sound)
                i += len(spelling)
                break
        else:
            char, after = _letter(word[i]), _letter(word[i + 1]) if i + 1 < len(word) else ""
            if char in "aeiou" or (char == "y" and i > 0):
                key.append(VOWEL)
            elif char == "c":
                key.append(sounds.soft_c if after in SOFT else "k")
            elif char == "g":
                key.append(sounds.soft_g if after in SOFT and i > 0 else "g")
            elif char == "q":
                key.append("k")
            elif char == "j":
                key.append("J")
            elif char != "h":
                key.append(char)
            i += 1
    squeezed = "".join(key)
    return re.sub(r"(.)\1+", r"\1", squeezed)  # doubled letters and vowel runs are one sound


def _substitution(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if VOWEL in (a, b):
        return 1.0
    return NEAR if any(a in group and b in group for group in NEAR_GROUPS) else 1.0


def _indel(sound: str) -> float:
    return VOWEL_COST if sound == VOWEL else 1.0


def distance(heard: str, name: str) -> float:
    """Weighted edit distance from the sound key `heard` to `name`'s, per sound of the
    name; sounds of `heard` past the end of the name cost TAIL_FACTOR times more."""
    rows, cols = len(heard), len(name)
    table = [[0.0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        table[i][0] = table[i - 1][0] + _indel(heard[i - 1])
    for j in range(1, cols + 1):
        table[0][j] = table[0][j - 1] + _indel(name[j - 1])
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            extra = _indel(heard[i - 1]) * (TAIL_FACTOR if j == cols else 1.0)
            table[i][j] = min(
                table[i - 1][j] + extra,
                table[i][j - 1] + _indel(name[j - 1]),
                table[i - 1][j - 1] + _substitution(heard[i - 1], name[j - 1]),
            )
    return table[rows][cols] / max(cols, 1)


def sounds_like(words: str, max_distance: float = MAX_DISTANCE, languages: Hearing = ENGLISH) -> str:
    """The mode whose name `words` (one word, or two heard for one) sound like, or "":
    in each language, the words' sounds by its spelling against its names'."""
    scored = []
    for lang in languages:
        heard = sound_key("".join(words.split()), lang.sounds)
        if heard:
            names = [(sound_key(name, lang.sounds), mode) for mode in MODES for name in lang.names(mode)]
            scored += [(distance(heard, key), mode) for key, mode in names]
    best, mode = min(scored, default=(max_distance + 1, ""))
    return mode if best <= max_distance else ""


def exactly(word: str, aliases: dict, languages: Hearing = ENGLISH) -> str:
    """The mode `word` names as written: a mode's own name, what a language calls it, or
    one of a user's aliases."""
    word = word.lower()
    return next(
        (
            mode
            for mode in MODES
            if word == mode or word in aliases.get(mode, ()) or any(word in lang.names(mode) for lang in languages)
        ),
        "",
    )


# The first word, or the first two, then the pause (punctuation) and the rest.
PREFIX = re.compile(r"^\s*([\w']+)\s*([,.:;!?-]*)\s*(.*)$", re.S)
# The silence after a name that sets it apart, in ms. Chosen on the `tune` half of
# tests/audio/modes (voxkey bench --modes): see bus/defaults.toml's prefix_pause_ms.
MIN_PAUSE_MS = 96


def stands_apart(mark: str, pauses_ms: list[int], index: int, min_pause_ms: int) -> bool:
    """Whether the word at `index` is followed by a pause: as the audio's word timings
    measured it when asr gave them, else as the punctuation mark Whisper wrote."""
    if index < len(pauses_ms):
        return pauses_ms[index] >= min_pause_ms
    return bool(mark)


def mode_prefix(
    text: str,
    aliases: dict,
    max_distance: float = MAX_DISTANCE,
    pauses_ms: list[int] = (),
    min_pause_ms: int = MIN_PAUSE_MS,
    languages: Hearing = ENGLISH,
) -> tuple[str, str]:
    """(mode, the rest of the utterance) if `text` begins by naming a mode, else ("", text)."""
    first = PREFIX.match(text)
    if not first or not first.group(3).strip():
        return "", text
    word, mark, rest = first.groups()
    if stands_apart(mark, pauses_ms, 0, min_pause_ms):
        mode = exactly(word, aliases, languages) or (mark and sounds_like(word, max_distance, languages))
        if mode:
            return mode, rest.strip()
    second = PREFIX.match(rest)
    if (
        not mark
        and second
        and second.group(2)
        and second.group(3).strip()
        and stands_apart(second.group(2), pauses_ms, 1, min_pause_ms)
    ):  # "Con verse, what..."
        mode = sounds_like(f"{word} {second.group(1)}", max_distance, languages)
        if mode:
            return mode, second.group(3).strip()
    return "", text


def named_alone(text: str, aliases: dict, max_distance: float = MAX_DISTANCE, languages: Hearing = ENGLISH) -> str:
    """The mode an utterance names when it is nothing but a name ("Jet."): vad ends an
    utterance at a pause, and the pause after a name can be that long. The same rules:
    a word other than the name needs its pause (here, the mark that ends the utterance)."""
    said = re.findall(r"[\w']+", text)
    if not 0 < len(said) <= 2:
        return ""
    exact = len(said) == 1 and exactly(said[0], aliases, languages)
    paused = text.rstrip()[-1:] in ",.:;!?-"
    return exact or (paused and sounds_like(" ".join(said), max_distance, languages)) or ""


def may_name_a_mode(text: str, aliases: dict, max_distance: float = MAX_DISTANCE, languages: Hearing = ENGLISH) -> bool:
    """Whether the first words might yet turn out to name a mode once the pause after
    them is heard: for words typed ahead, which must never be a mode's name."""
    said = re.findall(r"[\w']+", text)
    candidates = said[:1] + [" ".join(said[:2])] if said else []
    return any(exactly(c, aliases, languages) or sounds_like(c, max_distance, languages) for c in candidates)
