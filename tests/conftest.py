import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import sessions
from bench.netns import NEEDS, can_make_namespaces
from bench.workload import word_errors

TESTS = Path(__file__).parent
AUDIO = TESTS / "audio"
REPO = TESTS.parent
MANIFEST = json.loads((AUDIO / "MANIFEST.json").read_text())["files"]
VOXKEY = [sys.executable, "-m", "voxkey.cli"]
# Whisper's words are not voxkey's: CTranslate2's int8 kernels differ by CPU, and on an
# AMD EPYC tiny.en hears "And so am I fellow Americans" in jfk.flac once vad has cut it.
MAX_WORD_ERROR_RATE = 0.2

# Two hosts on this machine (bench/netns.py); the CI machine has what they need.
needs_namespaces = pytest.mark.skipif(not can_make_namespaces(), reason=NEEDS)


def spoken(name: str) -> str:
    text = MANIFEST[name]["text"]
    return " ".join(text) if isinstance(text, list) else text


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what ASR wording tolerance compares."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def assert_said(typed: str, said: str, max_error_rate: float = MAX_WORD_ERROR_RATE) -> None:
    """What voxkey owns of what it typed: the words said, whole, once and in order (a
    word left out, one typed twice or out of place is an error), within the word errors
    Whisper makes differently on another processor."""
    expected = words(said)
    errors = word_errors(expected, words(typed))
    assert expected and errors <= max_error_rate * len(expected), f"{errors} word errors in {len(expected)}: {typed!r}"


def utterances_typed(run_dir: Path) -> int:
    """How many utterances keys has finished typing, by its own record (keys.state.json,
    replaced atomically): the end of typing that voxkey owns, whatever punctuation the
    model gave the words."""
    try:
        typed = json.loads((run_dir / "keys.state.json").read_text())["typed"]
    except FileNotFoundError:
        return 0
    return sum(1 for done in typed.values() if done["final"] and not done["held"])


def voxkey(*args, timeout=180, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*VOXKEY, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def replay(name: str, *args) -> str:
    result = voxkey("replay", AUDIO / name, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="session", autouse=True)
def user_config_home(tmp_path_factory):
    """Every voxkey a test starts reads the user's own file ($XDG_CONFIG_HOME/voxkey/
    config.toml) from an empty folder, never from the real user's ~/.config."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config_home")))
        yield


@pytest.fixture(scope="session")
def x_display():
    """A real X server (Xvfb) for the typing tests (bench/sessions.py)."""
    if not shutil.which("Xvfb"):
        pytest.fail("Xvfb is not installed: run ./install")
    with sessions.x_server() as display:
        yield display


@pytest.fixture(scope="session")
def foot():
    """foot focused in a real headless sway, its shell writing each line to a file."""
    missing = sessions.missing_tools("sway", "swaymsg", "foot", "wtype", "wl-copy", "wl-paste")
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run ./install")
    with sessions.headless_sway() as app:
        yield app


@pytest.fixture
def microphone():
    """A real PulseAudio source (bench/sessions.py): what is played into the sink it
    yields is what the microphone hears."""
    with sessions.microphone() as sink:
        yield sink


class LoneStage:
    """One real stage process on real sockets, the test playing its neighbours: each
    neighbour is a participant named as the stage it stands for, which the stage
    listens to and which hears the stage (so reliable frames flow both ways, and the
    stage's acknowledgements reach it); `listener` hears everything the stage says.
    `close()` stops it and removes its run directory."""

    TOPICS = ["keystrokes", "generation", "request", "cancel", "transcript", "typed", "speech", "voice", "ack"]

    def __init__(self, stage: str, neighbours: list[str], *overrides: str):
        import tempfile

        import structlog

        from bus import config as configuration
        from bus import wiring
        from bus.peer import Peer

        self.run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
        self.name = stage
        self.neighbours, self.downstream, self.process = {}, None, None
        self._next_beat = 0.0
        try:
            self.config = configuration.load(
                overrides=[
                    f'bus.run_dir="{self.run_dir}"',
                    "bus.heartbeat_s=0.2",
                    *overrides,
                ]
            )
            self.config_path = self.run_dir / "run.toml"
            self.config_path.write_text(configuration.dumps(self.config))
            log = structlog.get_logger()
            neighbours = sorted({*neighbours, *wiring.listens_to(stage)})
            self.neighbours = {name: Peer(name, self.config, [stage], self.TOPICS, log) for name in neighbours}
            self.handed = {name: [] for name in neighbours}  # reliable frames each neighbour was handed
            self.downstream = Peer("listener", self.config, [stage], self.TOPICS, log)
            self.process = self.spawn()
            self.wait_ready()
        except BaseException:
            if self.process is not None:
                self.process.kill()
                self.process.communicate()
            self._cleanup()
            raise

    @property
    def upstream(self) -> dict:
        return self.neighbours

    def spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", f"stages.{self.name}", "--config", str(self.config_path)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, src: str, body, *, utt: str = "", key: str = "", payload: bytes = b"", pos: int = 0):
        """A frame from neighbour `src`; with `key`, handed over reliably to the stage."""
        from bus.frames import Frame

        frame = Frame(
            body=body,
            src=src,
            utt=utt,
            payload=payload,
            to=self.name if key else "",
            to_pid=self.process.pid if key else 0,
            key=key,
            pos=pos,
        )
        self.neighbours[src].send(frame)
        return frame

    def pump(self) -> None:
        """The neighbours hear the stage and beat, as live stages do."""
        for name, peer in self.neighbours.items():
            while peer.sub.poll(0):
                frame = peer.accept(peer.sub.recv_multipart())
                if frame is not None and frame.to == name and frame.topic != "ack":
                    self.handed[name].append(frame)
        if time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + 0.1
            for peer in self.neighbours.values():
                peer.heartbeat(True)
            self.downstream.heartbeat(True)

    def wait_ready(self, seconds: float = 60) -> None:
        """Until the stage is ready and every neighbour hears its current process."""
        deadline = time.monotonic() + seconds
        while not (
            self.beat()
            and self.beat().ready
            and self.beat().pid == self.process.pid
            and all(
                peer.heard.get(self.name) and peer.heard[self.name].pid == self.process.pid
                for peer in self.neighbours.values()
            )
        ):
            assert self.process.poll() is None, self.process.stderr.read()[-2000:]
            assert time.monotonic() < deadline, f"{self.name} never became ready"
            self.pump()
            self.downstream.receive(50)

    def handed_to(self, name: str, until, seconds: float = 60) -> list:
        """Reliable frames the stage hands neighbour `name` (what its handshake
        guarantees it gets, unlike `listener`, which may reconnect late to a restarted
        stage), until `until(frame)` is true."""
        deadline = time.monotonic() + seconds
        while not any(until(frame) for frame in self.handed[name]):
            assert time.monotonic() < deadline, f"{self.name} handed {name} only {[f.topic for f in self.handed[name]]}"
            self.pump()
            self.downstream.receive(20)
        return self.handed[name]

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
            self.pump()
            frame = self.downstream.receive(50)
            if frame is not None and frame.topic != "heartbeat":
                got.append(frame)
                if until(frame):
                    return got
        raise AssertionError(
            f"{self.name} did not finish in {seconds} s; got {[f.topic for f in got]}; "
            f"last beat {self.beat()}; listener {dict(self.downstream.counters)}"
        )

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
        for peer in [*self.neighbours.values(), self.downstream]:
            if peer is not None:
                peer.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)
