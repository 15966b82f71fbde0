"""A stage's memory that must outlive the process: one JSON file per stage in the run
directory, `STAGE.state.json`, replaced atomically (written beside, then renamed), so a
stage killed at any moment comes back to its last state.

Crashes, not power cuts: these files let a stage killed mid-utterance take up where it
was, within one `voxkey up` session, and a new session starts without them (a new
document). After a power cut nothing in them would be used, so nothing is fsynced: an
fsync per decision or typed piece would sit on the path from speech to keystroke (and
rewrite an SD card's blocks per token), to protect state that is thrown away anyway.
The kernel writes the page cache back in batches; on the Pi the run directory is the
tmpfs $XDG_RUNTIME_DIR and never reaches the card.

A file that cannot be read, or is valid JSON of the wrong shape, is set aside
(renamed `STAGE.state.json.bad-N`, with a warning) and the stage starts clean: a
stage that trusted it could drop speech.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path

from bus import sockets


class BadState(ValueError):
    """Persisted state of the wrong shape; the message says what is wrong."""


def path_for(config: dict, stage: str) -> Path:
    return sockets.run_dir(config) / f"{stage}.state.json"


def load(path: Path, check: Callable[[dict], None], log=None) -> dict:
    """The saved state, checked by `check` (which raises BadState); {} when there is
    none, or when it was malformed and has been set aside."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise BadState(f"a {type(data).__name__}, not a map")
        check(data)
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        aside = _set_aside(path)
        if log is not None:
            log.warning(
                "state file malformed: set aside, starting clean", path=str(path), aside=str(aside), error=str(error)
            )
        return {}


def save(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        json.dump(data, file)
    os.replace(temporary, path)


def _set_aside(path: Path) -> Path:
    for n in range(1, 1000):
        aside = path.with_name(f"{path.name}.bad-{n}")
        if not aside.exists():
            break
    try:
        os.replace(path, aside)
    except OSError:
        pass
    return aside


def expect(condition: bool, what: str) -> None:
    """For `check` functions: raise BadState naming what is wrong."""
    if not condition:
        raise BadState(what)
