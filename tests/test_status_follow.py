"""`voxkey status --follow --json` against a real running voxkey: a line per change of
what it does, as a Waybar module reads it (voxkey/indicator.py folds the bus)."""

import json
import queue
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, VOXKEY, voxkey

READY_S = 120  # every stage loaded, on a slow machine


class Lines:
    """The JSON lines a `voxkey status --follow --json` prints, read as they come. A
    thread reads them: two lines written at once arrive in one read, and a select() on
    the pipe would not wake for the second, already in the reader's buffer."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [*VOXKEY, "status", "--follow", "--json", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        self.seen: list[dict] = []
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")  # the follower exited

    def until(self, state: str, seconds: float) -> dict:
        """The first line from now on in `state` (waits for it; the deadline only gives up)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {state!r} line within {seconds} s: {[line['state'] for line in self.seen]}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line, f"the follower exited ({self.process.wait()}) before {state!r}: {self.seen}"
            self.seen.append(json.loads(line))
            if self.seen[-1]["state"] == state:
                return self.seen[-1]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.05)


@pytest.fixture
def run_dir():
    return Path(tempfile.mkdtemp(prefix="voxkey-test-"))


def test_without_a_voxkey_it_says_stopped_and_how_to_start_one(run_dir):
    result = voxkey("status", "--follow", "--json", "--set", f"bus.run_dir={run_dir}", timeout=30)
    assert result.returncode == 1
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["state"] == line["class"] == line["alt"] == "stopped" and "voxkey up" in line["tooltip"]


def test_follows_a_running_voxkey_through_loading_listening_paused_and_its_stop(microphone, run_dir, tmp_path):
    at = ["--set", f"bus.run_dir={run_dir}"]
    up = subprocess.Popen(
        [*VOXKEY, "up", *at, "--sink", f"file:{tmp_path / 'typed.txt'}", "--set", "cli.notify=false"],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    lines = None
    try:
        # Started before its stages, it would say `stopped` and end, as with no voxkey.
        wait_for(lambda: (run_dir / "capture.sock").exists(), READY_S, "capture's socket")
        lines = Lines(*at)
        listening = lines.until("listening", READY_S)
        assert listening["listening"] is True and listening["mode"] == "dictate" and listening["sink"] == "file"
        assert listening["text"] == "listening · dictate" and listening["error"] == ""
        assert lines.seen[0]["state"] == "loading"
        off = voxkey("listen", "off", *at)
        assert off.returncode == 0, off.stderr
        paused = lines.until("paused", 30)
        assert paused["listening"] is False and "voxkey listen on" in paused["tooltip"]
        assert voxkey("listen", "on", *at).returncode == 0
        lines.until("listening", 30)
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        assert lines.until("stopped", 60)["tooltip"].startswith("voxkey is not running")
        assert lines.process.wait(timeout=30) == 0  # it ends with the voxkey it followed
    finally:
        if lines is not None:
            lines.close()
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)
