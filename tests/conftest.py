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


class LoneStage:
    """One real stage process on real sockets, with the test playing its neighbours:
    `upstream` publishes what the stage listens to, `downstream` hears what it says.
    `close()` stops it and removes its run directory."""

    def __init__(self, stage: str, upstream: list[str], *overrides: str):
        import tempfile

        import structlog

        from bus import config as configuration
        from bus.peer import Peer

        self.run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
        self.name = stage
        self.upstream, self.downstream, self.process = {}, None, None
        try:
            self.config = configuration.load(
                overrides=[f'bus.run_dir="{self.run_dir}"', "bus.heartbeat_s=0.2", f"stages.{stage}.listen={upstream!r}".replace("'", '"'), *overrides]
            )
            self.config_path = self.run_dir / "run.toml"
            self.config_path.write_text(configuration.dumps(self.config))
            log = structlog.get_logger()
            self.upstream = {name: Peer(name, self.config, [], [], log) for name in upstream}
            self.downstream = Peer("listener", self.config, [stage], ["keystrokes", "generation", "request", "cancel", "transcript", "typed"], log)
            self.process = self.spawn()
            self.wait_ready()
        except BaseException:
            if self.process is not None:
                self.process.kill()
                self.process.communicate()
            self._cleanup()
            raise

    def spawn(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", f"stages.{self.name}", "--config", str(self.config_path)], cwd=REPO, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not (self.beat() and self.beat().ready and self.beat().pid == self.process.pid):
            assert self.process.poll() is None, self.process.stderr.read()[-2000:]
            assert time.monotonic() < deadline, f"{self.name} never became ready"
            for peer in self.upstream.values():
                peer.heartbeat(True)
            self.downstream.receive(100)

    def kill_and_restart(self) -> None:
        """SIGKILL the stage and start it again at once, as supervisord would; returns
        without waiting for the new process to be ready."""
        self.process.kill()
        self.process.communicate()
        self.process = self.spawn()

    def beat(self):
        return self.downstream.heard[self.name]

    def frames(self, until, seconds: float = 60) -> list:
        """Frames the stage sends (heartbeats aside) until `until(frame)` is true."""
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            frame = self.downstream.receive(100)
            if frame is not None and frame.topic != "heartbeat":
                got.append(frame)
                if until(frame):
                    return got
        raise AssertionError(f"{self.name} did not finish in {seconds} s; got {[f.topic for f in got]}")

    def close(self) -> str:
        try:
            self.process.terminate()
            try:
                _, stderr = self.process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                _, stderr = self.process.communicate()
        finally:
            self._cleanup()
        assert self.process.returncode == 0, stderr[-2000:]
        return stderr

    def _cleanup(self) -> None:
        for peer in [*self.upstream.values(), self.downstream]:
            if peer is not None:
                peer.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)
