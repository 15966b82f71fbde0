"""A stage's memory that must outlive the stage: a small JSON file in the run directory,
replaced atomically, so a stage killed at any moment comes back to its last state."""

import json
import os
from pathlib import Path

from bus import sockets


def path_for(config: dict, stage: str) -> Path:
    return sockets.run_dir(config) / f"{stage}.state.json"


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A state file that cannot be read is no reason not to run: start afresh.
        return {}


def save(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
