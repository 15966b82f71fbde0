"""`voxkey models`: fetching from a real local HTTP server, never the internet."""

import argparse
import functools
import hashlib
import io
import socket
import threading
import tomllib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bus import models as lookup
from voxkey import models

GGUF = b"GGUF" + bytes(range(256)) * 64
ASR = {"model.bin": b"\x01" * 5000, "config.json": b'{"layers": 2}', "vocabulary.txt": b"a\nb\n"}
GATED = b"GGUF" + b"\x07" * 300


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_entry(name: str, data: bytes) -> str:
    return f'[[model.files]]\nfile = "{name}"\nsize = {len(data)}\nsha256 = "{sha(data)}"\n'


def model_entry(name: str, role: str, repo: str, licence: str = "MIT", osi_approved: bool = True) -> str:
    url = f"https://example.org/{repo}/LICENSE"
    return (
        f'[[model]]\nname = "{name}"\nrole = "{role}"\nrepo = "{repo}"\n'
        f'licence = {{ name = "{licence}", url = "{url}", osi_approved = {str(osi_approved).lower()} }}\n'
    )


class Hub:
    """Serves ROOT/{repo}/resolve/main/{file} on 127.0.0.1 and records the paths asked for."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        hub = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                hub.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def put(self, repo: str, name: str, data: bytes) -> None:
        path = self.root / repo / "resolve" / "main" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def hub(tmp_path):
    served = Hub(tmp_path / "hub")
    served.put("acme/tiny-GGUF", "tiny-Q4_0.gguf", GGUF)
    for name, data in ASR.items():
        served.put("acme/whisper-tiny", name, data)
    served.put("acme/loose", "loose.bin", b"no digest for me")
    served.put("acme/gated-GGUF", "gated.gguf", GATED)
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text(
        'base_url = "http://127.0.0.1:9"\n\n'
        + model_entry("tiny", "instruct", "acme/tiny-GGUF", "Apache-2.0")
        + file_entry("tiny-Q4_0.gguf", GGUF)
        + model_entry("asr", "asr", "acme/whisper-tiny")
        + "".join(file_entry(name, data) for name, data in ASR.items())
        + model_entry("loose", "thinking", "acme/loose")
        + '[[model.files]]\nfile = "loose.bin"\nsize = 0\nsha256 = ""\n'
        + model_entry("gated", "instruct", "acme/gated-GGUF", "Acme Terms v2", osi_approved=False)
        + file_entry("gated.gguf", GATED)
    )
    return path


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "models"


def leftovers(dest: Path) -> list[str]:
    return sorted(str(path.relative_to(dest)) for path in dest.rglob("*") if path.is_file())


def test_fetch_installs_verifies_and_then_skips(hub, manifest, dest):
    out = io.StringIO()
    paths = models.fetch(["tiny", "asr"], hub.url, dest, out, manifest=manifest)

    assert paths == [dest / "tiny" / "tiny-Q4_0.gguf", dest / "asr"]
    assert paths[0].read_bytes() == GGUF
    assert {name: (dest / "asr" / name).read_bytes() for name in ASR} == ASR
    assert not list(dest.rglob("*.part"))
    assert "tiny/tiny-Q4_0.gguf  100% " in out.getvalue() and "MB/s" in out.getvalue()
    assert "voxkey: tiny/tiny-Q4_0.gguf: 0.0 MB, sha256 verified" in out.getvalue()
    assert len(hub.requests) == 1 + len(ASR)

    again = io.StringIO()
    models.fetch(["tiny", "asr"], hub.url, dest, again, manifest=manifest)
    assert len(hub.requests) == 1 + len(ASR)
    assert again.getvalue().count("already installed and verified") == 1 + len(ASR)


def test_corrupted_content_is_refused_and_leaves_nothing(hub, manifest, dest):
    hub.put("acme/tiny-GGUF", "tiny-Q4_0.gguf", b"X" * len(GGUF))
    with pytest.raises(models.ModelError) as caught:
        models.fetch(["tiny"], hub.url, dest, None, manifest=manifest)

    message = str(caught.value)
    assert "\n" not in message
    assert "tiny-Q4_0.gguf" in message
    assert sha(GGUF) in message and sha(b"X" * len(GGUF)) in message
    assert leftovers(dest) == []


def test_a_corrupted_installed_file_is_downloaded_again(hub, manifest, dest):
    models.fetch(["tiny"], hub.url, dest, None, manifest=manifest)
    (dest / "tiny" / "tiny-Q4_0.gguf").write_bytes(b"Y" * len(GGUF))
    models.fetch(["tiny"], hub.url, dest, None, manifest=manifest)
    assert (dest / "tiny" / "tiny-Q4_0.gguf").read_bytes() == GGUF
    assert len(hub.requests) == 2


def test_wrong_size_is_refused_before_downloading(hub, manifest, dest):
    hub.put("acme/tiny-GGUF", "tiny-Q4_0.gguf", GGUF + b"extra")
    with pytest.raises(models.ModelError, match=r"serves \d+ bytes; the manifest expects \d+"):
        models.fetch(["tiny"], hub.url, dest, None, manifest=manifest)
    assert leftovers(dest) == []


def test_http_404_names_the_url(hub, manifest, dest):
    (hub.root / "acme/whisper-tiny/resolve/main/vocabulary.txt").unlink()
    with pytest.raises(models.ModelError) as caught:
        models.fetch(["asr"], hub.url, dest, None, manifest=manifest)

    message = str(caught.value)
    assert (
        message == f"cannot download {hub.url}/acme/whisper-tiny/resolve/main/vocabulary.txt: HTTP 404 File not found"
    )
    assert not (dest / "asr" / "vocabulary.txt").exists() and not list(dest.rglob("*.part"))


def closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_every_model_is_checked_and_the_copy_by_hand_named(hub, manifest, dest):
    models.fetch(["tiny"], hub.url, dest, None, manifest=manifest)  # installed while online
    offline = f"http://127.0.0.1:{closed_port()}"
    out = io.StringIO()
    with pytest.raises(models.ModelError) as caught:
        models.fetch(["tiny", "asr"], offline, dest, out, manifest=manifest)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"cannot reach 127.0.0.1:{offline.rsplit(':', 1)[1]} (Connection refused): no network, or the server is down; "
    )
    assert message.endswith(
        f"{len(ASR)} file(s) not installed: copy them in by hand as shown above, "
        "then check them with voxkey models list --verify"
    )
    lines = out.getvalue().splitlines()
    assert "voxkey: tiny/tiny-Q4_0.gguf: already installed and verified" in lines  # checked, not fetched
    for name in ASR:  # every missing file, with where it comes from and where it goes
        assert (
            f"voxkey: asr/{name}: not installed: without a network, download "
            f"{offline}/acme/whisper-tiny/resolve/main/{name} "
            f"elsewhere and copy it to {dest / 'asr' / name}"
        ) in lines
    assert not (dest / "asr").exists()  # no empty folder left behind
    assert (dest / "tiny" / "tiny-Q4_0.gguf").read_bytes() == GGUF


def test_a_file_copied_in_by_hand_is_verified_by_list(manifest, dest):
    (dest / "tiny").mkdir(parents=True)
    (dest / "tiny" / "tiny-Q4_0.gguf").write_bytes(GGUF)
    assert {entry.model.name: entry.state for entry in models.status(dest, manifest=manifest, verify=True)}[
        "tiny"
    ] == "verified"


def test_unverified_files_need_explicit_permission(hub, manifest, dest):
    with pytest.raises(models.ModelError, match=r"no SHA-256 for loose/loose.bin; .*--allow-unverified"):
        models.fetch(["loose"], hub.url, dest, None, manifest=manifest)
    assert hub.requests == []

    out = io.StringIO()
    models.fetch(["loose"], hub.url, dest, out, manifest=manifest, allow_unverified=True)
    assert (dest / "loose" / "loose.bin").read_bytes() == b"no digest for me"
    assert f"UNVERIFIED: sha256 {sha(b'no digest for me')}" in out.getvalue()


def test_a_licence_that_is_not_osi_approved_is_accepted_before_any_download(hub, manifest, dest):
    # Fetching everything: not one file is downloaded, the OSI-licensed ones neither.
    with pytest.raises(models.ModelError) as caught:
        models.fetch(None, hub.url, dest, None, manifest=manifest, allow_unverified=True)
    assert str(caught.value) == (
        "gated is under the Acme Terms v2, not OSI-approved (read it at https://example.org/acme/gated-GGUF/LICENSE): "
        'accept it with --accept-licence "Acme Terms v2" (or --accept-licences); nothing was downloaded'
    )
    assert hub.requests == [] and leftovers(dest) == []

    models.fetch(["gated"], hub.url, dest, None, manifest=manifest, accepted=["acme terms V2"])  # any case
    assert (dest / "gated" / "gated.gguf").read_bytes() == GATED
    assert hub.requests == ["/acme/gated-GGUF/resolve/main/gated.gguf"]
    # Once it is installed, fetching it again asks nothing and downloads nothing.
    models.fetch(["gated"], hub.url, dest, None, manifest=manifest)
    assert len(hub.requests) == 1


def test_accept_all_licences(hub, manifest, dest):
    models.fetch(["gated", "tiny"], hub.url, dest, None, manifest=manifest, accept_all=True)
    assert len(hub.requests) == 2 and (dest / "gated" / "gated.gguf").is_file()


def test_the_licence_is_asked_for_and_a_no_downloads_nothing(hub, manifest, dest):
    asked = []

    def refuse(licence, under):
        asked.append((licence.name, licence.url, under))
        return False

    with pytest.raises(models.ModelError, match=r"^gated is under the Acme Terms v2, .*: not accepted; nothing was"):
        models.fetch(["tiny", "gated"], hub.url, dest, None, manifest=manifest, confirm=refuse)
    assert asked == [("Acme Terms v2", "https://example.org/acme/gated-GGUF/LICENSE", ["gated"])]
    assert hub.requests == []

    models.fetch(["tiny", "gated"], hub.url, dest, None, manifest=manifest, confirm=lambda licence, under: True)
    assert len(hub.requests) == 2


@pytest.fixture
def run(hub, manifest, dest, monkeypatch):
    """`voxkey models …` as the command runs it, on the test hub and models folder."""
    monkeypatch.setattr(lookup, "MANIFEST", manifest)  # where the default manifest is named
    monkeypatch.setenv("VOXKEY_MODELS_DIR", str(dest))
    monkeypatch.setenv("VOXKEY_MODELS_BASE_URL", hub.url)
    root = argparse.ArgumentParser(prog="voxkey")
    models.add_cli(root.add_subparsers(dest="command", required=True))

    def command(*argv) -> int:
        args = root.parse_args(argv)
        return args.run(args)

    return command


def test_the_cli_asks_on_a_terminal_and_refuses_elsewhere(run, hub, dest, monkeypatch, capsys):
    assert run("models", "fetch", "gated") == 1  # pytest's stdin is no terminal: refused, with the flag named
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and '--accept-licence "Acme Terms v2"' in error and hub.requests == []

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert run("models", "fetch", "gated") == 1
    assert "Accept it? [y/N]" in capsys.readouterr().err and hub.requests == []
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert run("models", "fetch", "gated") == 0
    assert (dest / "gated" / "gated.gguf").read_bytes() == GATED
    (dest / "gated" / "gated.gguf").unlink()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run("models", "fetch", "gated", "--accept-licence", "Acme Terms v2") == 0
    assert len(hub.requests) == 2


def test_local_path_explains_how_to_install(hub, manifest, dest):
    with pytest.raises(models.ModelError) as caught:
        lookup.local_path("tiny", dest, manifest=manifest)
    assert str(caught.value) == (
        f"model tiny not found at {dest / 'tiny' / 'tiny-Q4_0.gguf'}: run `voxkey models fetch tiny`"
    )
    with pytest.raises(models.ModelError, match="unknown model nope; the manifest has tiny, asr, loose, gated"):
        lookup.local_path("nope", dest, manifest=manifest)

    models.fetch(["tiny", "asr"], hub.url, dest, None, manifest=manifest)
    assert lookup.local_path("tiny", dest, manifest=manifest) == dest / "tiny" / "tiny-Q4_0.gguf"
    assert lookup.local_path("asr", dest, manifest=manifest) == dest / "asr"

    (dest / "asr" / "config.json").unlink()
    with pytest.raises(models.ModelError, match=r"model asr at .* is incomplete: run `voxkey models fetch asr`"):
        lookup.local_path("asr", dest, manifest=manifest)


def test_status_reports_each_model(hub, manifest, dest):
    models.fetch(["tiny", "asr"], hub.url, dest, None, manifest=manifest)
    (dest / "asr" / "model.bin").write_bytes(b"\x02" * len(ASR["model.bin"]))

    def states(**kwargs):
        return {entry.model.name: entry.state for entry in models.status(dest, manifest=manifest, **kwargs)}

    assert states() == {"tiny": "installed", "asr": "installed", "loose": "missing", "gated": "missing"}
    assert states(verify=True) == {"tiny": "verified", "asr": "corrupt", "loose": "missing", "gated": "missing"}


def test_cli_uses_the_environment_and_reports_one_line_errors(run, hub, dest, monkeypatch, capsys):
    assert run("models", "fetch", "tiny") == 0
    assert (dest / "tiny" / "tiny-Q4_0.gguf").read_bytes() == GGUF
    assert run("models", "list", "--set", "stages.instruct.model=tiny") == 0
    listing = capsys.readouterr().out.splitlines()
    rows = table([line for line in listing if not line.startswith("* ")])
    assert list(rows) == ["tiny", "asr", "loose", "gated", *lookup.BUILT_IN]
    assert rows["tiny"] == {
        "ROLE": "instruct",
        "STATE": "installed",
        "SIZE": "0.0 MB",
        "USED BY": "instruct",
        "LICENCE": "Apache-2.0",
        "PATH": str(dest / "tiny" / "tiny-Q4_0.gguf"),
    }
    assert (rows["asr"]["STATE"], rows["asr"]["USED BY"], rows["asr"]["LICENCE"]) == ("missing", "-", "MIT")
    # A licence that is not OSI-approved is marked, and named with its text below the table.
    assert rows["gated"]["LICENCE"] == "Acme Terms v2*" and rows["gemma3-270m"]["LICENCE"] == "Gemma Terms of Use*"
    assert "* Acme Terms v2: not OSI-approved; read it at https://example.org/acme/gated-GGUF/LICENSE" in listing
    assert "* Gemma Terms of Use: not OSI-approved; read it at https://ai.google.dev/gemma/terms" in listing
    # The built-in models, where they are and which stages run them by default.
    assert rows["tiny.en"]["STATE"] == "built in" and rows["tiny.en"]["USED BY"] == "asr"
    assert rows["smollm2-135m"]["USED BY"] == "thinking"  # instruct was set to another
    assert rows["silero-vad-v6"]["USED BY"] == "vad" and Path(rows["silero-vad-v6"]["PATH"]).is_file()
    assert rows["silero-vad-v6"]["LICENCE"] == "MIT" and rows["smollm2-135m"]["LICENCE"] == "Apache-2.0"

    assert run("models", "fetch", "asr", "--base-url", hub.url + "/nowhere", "--dir", str(dest / "other")) == 1
    error = capsys.readouterr().err
    assert (
        error == f"voxkey: cannot download {hub.url}/nowhere/acme/whisper-tiny/resolve/main/model.bin: "
        "HTTP 404 File not found\n"
    )


def table(lines: list[str]) -> dict[str, dict[str, str]]:
    """`voxkey models list`'s rows by name, each cell cut at its header's column."""
    header = lines[0]
    names = ["NAME", "ROLE", "STATE", "SIZE", "USED BY", "LICENCE", "PATH"]
    starts = [header.index(name) for name in names] + [None]
    cells = [
        {name: line[start:end].strip() for name, start, end in zip(names, starts, starts[1:])} for line in lines[1:]
    ]
    return {row.pop("NAME"): row for row in cells}


def test_progress_is_throttled():
    now = [0.0]
    out = io.StringIO()
    meter = models.Progress("m.bin", 100 * 10**6, out, interval=0.25, clock=lambda: now[0])
    for step in range(1, 101):  # one MB every 10 ms: a second in all
        now[0] = step / 100
        meter.update(step * 10**6, final=step == 100)
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6
    assert lines[-1] == "  m.bin  100% 100.0/100.0 MB  100.0 MB/s"


def test_the_real_manifest_is_complete():
    raw = tomllib.loads(lookup.MANIFEST.read_text())
    assert raw["base_url"] == "https://huggingface.co"
    for entry in raw["model"]:
        assert {"name", "role", "repo", "files", "licence"} <= entry.keys()
        assert {"name", "url", "osi_approved"} <= entry["licence"].keys()
        for spec in entry["files"]:
            assert {"file", "size", "sha256"} <= spec.keys()

    loaded = models.load_manifest()
    assert {name: model.role for name, model in loaded.models.items()} == {
        "lfm2.5-1.2b-instruct": "instruct",
        "lfm2.5-1.2b-thinking": "thinking",
        "whisper-base.en": "asr",
        "whisper-base": "asr",
        "whisper-small": "asr",
    }
    for name in ("whisper-base.en", "whisper-base", "whisper-small"):
        assert [spec.file for spec in loaded.models[name].files] == [
            "model.bin",
            "config.json",
            "tokenizer.json",
            "vocabulary.txt",
        ]
        assert loaded.models[name].licence == lookup.WHISPER_LICENCE
    assert loaded.models["whisper-small"].repo == "Systran/faster-whisper-small"
    assert loaded.models["whisper-base"].repo == "Systran/faster-whisper-base"
    lfm = loaded.models["lfm2.5-1.2b-instruct"].licence
    assert (lfm.name, lfm.osi_approved) == ("LFM Open License v1.0", False)
    assert lfm.url == "https://huggingface.co/LiquidAI/LFM2.5-1.2B-Instruct/blob/main/LICENSE"
    url = loaded.models["lfm2.5-1.2b-instruct"].url(loaded.base_url, loaded.models["lfm2.5-1.2b-instruct"].files[0])
    assert (
        url == "https://huggingface.co/LiquidAI/LFM2.5-1.2B-Instruct-GGUF/resolve/main/LFM2.5-1.2B-Instruct-Q4_0.gguf"
    )
