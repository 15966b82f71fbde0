"""What an utterance means: dictation, an editing command, a mode for it alone, a switch
of the sticky mode, a stop word, a new conversation. Pure, tested on what Whisper
really writes.

A spoken prefix picks the mode for one utterance ("Chat. What is..."), when the name
stands apart from what follows (a pause after it in the audio); a mode's name
said on its own ("Chat." then a pause vad ends the utterance at) picks it for the next
one; "switch to X mode" makes it stick. Names are recognised by how they sound, as
Whisper really writes them ("yet,", "Conders,": stages/router/modewords.py), and
`mode_words` are a user's own aliases. "New conversation" counts the conversation up:
the model stages start chat and converse afresh.
"""

import re
from dataclasses import dataclass

from bus.text import plain
from stages.router.dictation import Dictation, spoken_command
from stages.router.modewords import MIN_PAUSE_MS, exactly, may_name_a_mode, mode_prefix, named_alone, sounds_like

SWITCH = re.compile(r"^(?:please )?(?:switch|change|go|set)(?: back)? (?:to|into) (\w+)(?: mode)?$")


# Words a partial may not begin with: the utterance could still become a command or a switch.
COMMAND_STARTS = {"switch", "change", "go", "set", "new", "scratch"}  # after a "please"


PARTIAL_MIN_WORDS = 3


NEW_CONVERSATION = re.compile(r"^(?:start )?(?:a )?new conversation$")


@dataclass
class Decision:
    mode: str  # the mode that handles `text`
    text: str
    sticky: str = ""  # a mode to switch to (nothing to type)
    stop: bool = False  # a stop word said alone, with something to stop: nothing to type
    new_conversation: bool = False  # chat and converse start afresh; nothing to type
    next: str = ""  # a mode's name said on its own: the mode of the next utterance (nothing to type)


def decide(
    text: str,
    sticky: str,
    mode_words: dict,
    stop_words: set,
    pauses_ms: list[int] = (),
    min_pause_ms: int = MIN_PAUSE_MS,
    stopping: bool = False,
) -> Decision:
    """What an utterance asks for. Pure: tested on what Whisper really writes. A mode's
    name is recognised by its sound (stages/router/modewords.py) and counts as a prefix
    only when the pause after it (`pauses_ms`, asr's word timings) sets it apart;
    `mode_words` are a user's aliases, which count like the names themselves.
    A stop word said alone stops a model's answer that was in progress when it was said
    (`stopping`); with nothing to stop, it is dictation like any word in dictate mode,
    and nothing to do in the model modes."""
    said = plain(text)
    if spoken_command(text) in (*Dictation.COMMANDS, Dictation.SCRATCH):
        return Decision("dictate", text.strip())  # editing commands work in every mode
    if said in stop_words and (stopping or sticky != "dictate"):
        return Decision(sticky, "", stop=True)
    if NEW_CONVERSATION.match(said):
        return Decision(sticky, "", new_conversation=True)
    switch = SWITCH.match(said)
    named = switch and (exactly(switch.group(1), mode_words) or sounds_like(switch.group(1)))
    if named:
        return Decision(sticky, "", sticky=named)
    mode, rest = mode_prefix(text, mode_words, pauses_ms=pauses_ms, min_pause_ms=min_pause_ms)
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
