"""A stand-in for a language model that plays a script: for tests of what no embedded
model can do (SmolLM2-135M never writes `<think>` or a tool call, and the production
LFM2.5 models are downloaded only by the user).

Set a model stage's `model = "scripted:PATH"`; PATH is a JSON file:

    {"metadata": {"general.architecture": "lfm2"},   # what a GGUF would say: picks the prompt format
     "pace_ms": 25,                                    # time per generated token
     "turns": [
       {"when": ["17 times 23"], "pieces": ["<think>", "Let", " me", ...]},
       {"when": ["<|tool_response_start|>391"], "pieces": [...], "repeat": [" step {n}", "."]}]}

Each streamed completion plays the *last* turn whose `when` strings all occur in its
prompt (so a later, more specific turn wins), token by token: its `pieces`, then its
`repeat` pieces over and over (`{n}` counts the rounds) until `max_tokens` or a stop
string. A prompt no turn is meant for is an error naming the script: the script checks
what the stage feeds back, not only what it says. Only the part of `llama_cpp.Llama`
the model stages use is here; each token played is logged, so a test can count what
was generated after any logged event.
"""

import json
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bus.config import ConfigError

PREFIX = "scripted:"
# The stages whose `model` a script may stand in for: the language-model stages.
SCRIPTABLE = ("instruct", "thinking")
TURN_KEYS = {"when", "pieces", "repeat"}
SCRIPT_KEYS = {"metadata", "pace_ms", "turns", "about"}
# Roughly how a tokenizer splits text: a special tag, a word with its space, a symbol.
TOKEN = re.compile(r"<\|[^|]*\|>|</?think>| ?\w+|\s+|[^\w\s]")


class ScriptError(ValueError):
    """A script that cannot be played; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Turn:
    when: tuple[str, ...]
    pieces: tuple[str, ...]
    repeat: tuple[str, ...]

    def tokens(self) -> Iterator[str]:
        yield from self.pieces
        rounds = 0
        while self.repeat:
            rounds += 1
            for piece in self.repeat:
                yield piece.replace("{n}", str(rounds))


@dataclass(frozen=True)
class Script:
    path: Path
    metadata: dict
    pace_s: float
    turns: tuple[Turn, ...]

    def turn_for(self, prompt: str) -> Turn:
        for turn in reversed(self.turns):
            if all(text in prompt for text in turn.when):
                return turn
        raise ScriptError(f"no turn of script {self.path} is meant for a prompt ending {prompt[-160:]!r}")


def is_scripted(model: str) -> bool:
    return model.startswith(PREFIX)


def check_config(config: dict) -> None:
    """Every `scripted:` model in a configuration, checked whole before any stage starts,
    so a bad script stops the run with the file named (ConfigError)."""
    for stage, section in config["stages"].items():
        model = section.get("model")
        if not isinstance(model, str) or not is_scripted(model):
            continue
        name = f"stages.{stage}.model"
        if stage not in SCRIPTABLE:
            allowed = ", ".join(f"stages.{s}.model" for s in SCRIPTABLE)
            raise ConfigError(f"{name}: a script can stand in only for a language model ({allowed})")
        try:
            load(model)
        except ScriptError as error:
            raise ConfigError(f"{name}: {error}") from None


def load(model: str) -> Script:
    """The script a `scripted:PATH` model setting names, checked whole."""
    path = Path(model[len(PREFIX) :]).expanduser()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ScriptError(f"script {path} does not exist: give the path of a JSON script after 'scripted:'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScriptError(f"script {path} cannot be read as JSON ({error})") from None
    return Script(path, **parse(data, path))


def parse(data, path: Path) -> dict:
    """A script's fields, or ScriptError saying what is wrong with it."""

    def fail(problem: str):
        raise ScriptError(f"script {path}: {problem}")

    if not isinstance(data, dict):
        fail("must be a JSON object with a list of turns")
    if unknown := set(data) - SCRIPT_KEYS:
        fail(f"unknown key {sorted(unknown)[0]!r}; a script has {', '.join(sorted(SCRIPT_KEYS))}")
    metadata, pace, turns = data.get("metadata", {}), data.get("pace_ms", 0), data.get("turns")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        fail("metadata must map names to text, as a GGUF's does")
    if isinstance(pace, bool) or not isinstance(pace, (int, float)) or pace < 0:
        fail(f"pace_ms must be a number of milliseconds, not {pace!r}")
    if not isinstance(turns, list) or not turns:
        fail("turns must be a non-empty list")
    parsed = []
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or set(turn) - TURN_KEYS or "pieces" not in turn:
            fail(f"turn {number} must be an object with pieces (and optionally when, repeat)")
        fields = {key: turn.get(key, []) for key in TURN_KEYS}
        for key, value in fields.items():
            if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
                fail(f"turn {number}: {key} must be a list of strings")
        parsed.append(Turn(**{key: tuple(value) for key, value in fields.items()}))
    return {"metadata": dict(metadata), "pace_s": pace / 1000, "turns": tuple(parsed)}


class ScriptedLlama:
    """Plays a Script through the calls the model stages make on `llama_cpp.Llama`."""

    def __init__(self, script: Script, n_ctx: int, log=None):
        self.script = script
        self.metadata = script.metadata
        self._n_ctx = n_ctx
        self.log = log

    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        tokens = [zlib.crc32(token.encode()) % 50_000 for token in TOKEN.findall(text.decode(errors="replace"))]
        return [1, *tokens] if add_bos else tokens

    def create_completion(
        self, prompt: str, max_tokens: int = 16, stop: list[str] | None = None, stream: bool = False, **sampling
    ):
        """Stream: the turn meant for `prompt`, a chunk per token, paced. Not streamed
        (only a stage's warm-up, which asks nothing): no text."""
        if not stream:
            return {"choices": [{"text": "", "index": 0, "finish_reason": "length"}]}
        return self._play(self.script.turn_for(prompt), max_tokens, list(stop or []))

    def _play(self, turn: Turn, max_tokens: int, stop: list[str]) -> Iterator[dict]:
        tokens = turn.tokens()
        for number in range(1, max_tokens + 1):
            piece = next(tokens, None)
            if piece is None:
                return
            cut = min((piece.find(s) for s in stop if s in piece), default=-1)
            if cut >= 0:
                piece = piece[:cut]
            time.sleep(self.script.pace_s)  # the time a real model takes to decode it
            if self.log is not None:
                self.log.info("scripted token", n=number, text=piece)
            if piece:
                yield {"choices": [{"text": piece, "index": 0, "finish_reason": None}]}
            if cut >= 0:
                return
