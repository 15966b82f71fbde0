"""A stage's memory that must outlive the process: one JSON file per stage in the run
directory, `STAGE.state.json`, replaced atomically (written beside, then renamed), so a
stage killed at any moment comes back to its last state.

Power loss: a `durable` save also fsyncs the file before the rename and the directory
after it, so after a power cut the file is either the old or the new one, never torn.
Saves made for every typed piece are not durable (the kernel writes them back in
batches): they only guard against a crash of the process, which the page cache survives.

A file that cannot be read, or is valid JSON of the wrong shape, is set aside
(renamed `STAGE.state.json.bad-N`, with a warning) and the stage starts clean: a
stage that trusted it could drop speech.
"""

import json
import os
from pathlib import Path
from typing import Callable

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
            log.warning("state file malformed: set aside, starting clean", path=str(path), aside=str(aside), error=str(error))
        return {}


def save(path: Path, data: dict, durable: bool = False) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        json.dump(data, file)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, path)
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


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
