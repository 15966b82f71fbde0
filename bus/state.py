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

Each stage's state is one record (a dataclass whose fields all have defaults; see
bus/records.py): loaded and checked field by field, then by its own `check()` if it
has one (what types cannot say, checked on load only, not at every save), saved whole. A file that cannot
be read, or is valid JSON that does not make the record, is set aside (renamed
`STAGE.state.json.bad-N`, with a warning) and the stage starts clean: a stage that
trusted it could drop speech.
"""

import json
import os
from pathlib import Path
from typing import TypeVar

from bus import records, sockets

T = TypeVar("T")


def path_for(config: dict, stage: str) -> Path:
    return sockets.run_dir(config) / f"{stage}.state.json"


def load(path: Path, kind: type[T], log=None) -> T:
    """The saved state as a `kind` record; a fresh `kind()` when there is none, or when
    it was malformed and has been set aside."""
    try:
        record = records.typed(kind, json.loads(path.read_text()), "state")
        if hasattr(record, "check"):
            record.check()
        return record
    except FileNotFoundError:
        return kind()
    except (OSError, ValueError) as error:  # RecordError and JSON's errors are ValueErrors
        aside = _set_aside(path)
        if log is not None:
            log.warning(
                "state file malformed: set aside, starting clean", path=str(path), aside=str(aside), error=str(error)
            )
        return kind()


def save(path: Path, record) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        file.write(json.dumps(records.plain(record)))  # one write: json.dump encodes in pure-Python pieces
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
