"""What an utterance means: dictation, an editing command, a mode for it alone, a switch
of the sticky mode, a stop word, a new conversation. Pure, tested on what Whisper
really writes.

A spoken prefix picks the mode for one utterance ("Chat. What is..."), when the name
stands apart from what follows (a pause after it in the audio); a mode's name
said on its own ("Chat." then a pause vad ends the utterance at) picks it for the next
one; "switch to X mode" makes it stick. Names are recognised by how they sound, as
Whisper really writes them ("yet,", "Conders,": stages/router/modewords.py), and
`mode_words` are a user's own aliases. "New conversation" counts the conversation up:
the model stages start chat and converse afresh. Every phrase is data, in the tables of
the language the utterance was heard in and English's (stages/router/languages/).
"""

from dataclasses import dataclass

from bus.text import plain
from stages.router.dictation import capitalised
from stages.router.language import (
    EDITS,
    ENGLISH,
    NEW_CONVERSATION,
    SCRATCH,
    Language,
    command_of,
    may_become_a_command,
    stop_words_of,
)
from stages.router.modewords import (
    MIN_PAUSE_MS,
    Hearing,
    exactly,
    may_name_a_mode,
    mode_prefix,
    named_alone,
    sounds_like,
)

PARTIAL_MIN_WORDS = 3


@dataclass
class Decision:
    mode: str  # the mode that handles `text`
    text: str
    sticky: str = ""  # a mode to switch to (nothing to type)
    stop: bool = False  # a stop word said alone, with something to stop: nothing to type
    new_conversation: bool = False  # chat and converse start afresh; nothing to type
    next: str = ""  # a mode's name said on its own: the mode of the next utterance (nothing to type)


def switched_to(said: str, aliases: dict, languages: Hearing = ENGLISH) -> str:
    """The mode "switch to X mode" names (plain words, in any of the languages), or ""."""
    for lang in languages:
        name = _switch_name(lang.unpolite(said).split(), lang)
        mode = name and (exactly(name, aliases, languages) or sounds_like(name, languages=languages))
        if mode:
            return mode
    return ""


def _switch_name(words: list[str], lang: Language) -> str:
    """The name in a switch said the language's way: its verb, joining words, and the
    word for "mode" where the language puts it; at least a joining word or that word
    ("go to chat", "passe en mode dictée", "wechsle zum Diktatmodus")."""
    switch = lang.switch
    if not words or words[0] not in switch.verbs:
        return ""
    rest = words[1:]
    joined = 0
    while rest and rest[0] in switch.joins:
        rest, joined = rest[1:], joined + 1
    moded = False
    if switch.mode_word_first and rest[:1] == [switch.mode_word]:
        rest, moded = rest[1:], True
    elif not switch.mode_word_first and len(rest) > 1 and rest[-1] == switch.mode_word:
        rest, moded = rest[:-1], True
    elif switch.mode_word_glued and len(rest) == 1 and len(rest[0]) > len(switch.mode_word):
        if rest[0].endswith(switch.mode_word):
            rest, moded = [rest[0][: -len(switch.mode_word)]], True
    return rest[0] if len(rest) == 1 and (joined or moded) else ""


def decide(
    text: str,
    sticky: str,
    mode_words: dict,
    stop_words: set,
    pauses_ms: list[int] = (),
    min_pause_ms: int = MIN_PAUSE_MS,
    stopping: bool = False,
    languages: Hearing = ENGLISH,
) -> Decision:
    """What an utterance asks for. Pure: tested on what Whisper really writes. A mode's
    name is recognised by its sound (stages/router/modewords.py) and counts as a prefix
    only when the pause after it (`pauses_ms`, asr's word timings) sets it apart;
    `mode_words` are a user's aliases, which count like the names themselves.
    A stop word said alone stops a model's answer that was in progress when it was said
    (`stopping`); with nothing to stop, it is dictation like any word in dictate mode,
    and nothing to do in the model modes. The words are those of `languages`: the
    language the utterance was heard in, and English (stages/router/language.py)."""
    said = plain(text)
    if command_of(text, languages) in (*EDITS, SCRATCH):
        return Decision("dictate", text.strip())  # editing commands work in every mode
    if (said in stop_words or said in stop_words_of(languages)) and (stopping or sticky != "dictate"):
        return Decision(sticky, "", stop=True)
    if any(lang.command(lang.unpolite(said)) == NEW_CONVERSATION for lang in languages):
        return Decision(sticky, "", new_conversation=True)
    named = switched_to(said, mode_words, languages)
    if named:
        return Decision(sticky, "", sticky=named)
    mode, rest = mode_prefix(text, mode_words, pauses_ms=pauses_ms, min_pause_ms=min_pause_ms, languages=languages)
    if mode:
        return Decision(mode, capitalised(rest))
    alone = named_alone(text, mode_words, languages=languages)
    if alone:
        return Decision(sticky, "", next=alone)
    return Decision(sticky, text.strip())


def plainly_dictated(text: str, mode_words: dict, stop_words: set, languages: Hearing = ENGLISH) -> bool:
    """Whether words typed ahead of the end of an utterance are dictation whatever
    follows them: not the start of a command, a mode's name or a switch."""
    said = plain(text).split()
    if (
        len(said) < PARTIAL_MIN_WORDS
        or may_become_a_command(said, languages)
        or may_name_a_mode(text, mode_words, languages=languages)
    ):
        return False
    decided = decide(text, "dictate", mode_words, stop_words, languages=languages)
    return decided == Decision("dictate", text.strip())
