import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
AUDIO = TESTS / "audio"
REPO = TESTS.parent
MANIFEST = json.loads((AUDIO / "MANIFEST.json").read_text())["files"]
VOXKEY = [sys.executable, "-m", "bus.cli"]


def spoken(name: str) -> str:
    text = MANIFEST[name]["text"]
    return " ".join(text) if isinstance(text, list) else text


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what ASR wording tolerance compares."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def voxkey(*args, timeout=180, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*VOXKEY, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def replay(name: str, *args) -> str:
    result = voxkey("replay", AUDIO / name, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="session")
def x_display():
    """A real X server (Xvfb) for the typing tests."""
    if not shutil.which("Xvfb"):
        pytest.fail("Xvfb is not installed: run ./install")
    display = ":97"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"):
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.1)
    yield display
    server.terminate()
    server.wait()
