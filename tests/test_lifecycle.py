"""voxkey up as a service manager runs it: it reports ready when it is, stops on any
signal leaving no process and no microphone behind, says in one line what went wrong
(a stage crashing in a loop, supervisord gone, a swap that cannot start), and a bad
swap rolls back while the pipeline goes on typing. Real processes throughout; the rules
underneath (crash loops, the telling log line, loading progress) are also checked on
their own."""

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import AUDIO, REPO, VOXKEY, assert_said, spoken, utterances_typed, voxkey

from bench import lifecycle, sessions
from bench.procs import alive
from bus import wiring
from bus.frames import Heartbeat
from voxkey.status import Loading
from voxkey.supervise import CrashLoops, Supervisor, last_error

# --- the rules ------------------------------------------------------------------------------


def test_the_lifecycle_bench_of_several_runs_gives_each_process_its_median():
    def one(capture: float, vad: float, stop: float) -> dict:
        shares = {"capture": capture, "vad": vad}
        return {
            "idle_window_s": 30.0,
            "listening": shares,
            "paused": {"capture": capture / 10},
            "listening_total": capture + vad,
            "paused_total": capture / 10,
            "stop_s": dict.fromkeys(lifecycle.SIGNALS, stop),
        }

    merged = lifecycle.medians([one(3.0, 1.0, 2.0), one(1.0, 9.0, 4.0), one(2.0, 2.0, 3.0)])
    assert merged["listening"] == {"capture": 2.0, "vad": 2.0}
    assert merged["listening_total"] == 4.0 and merged["paused"] == {"capture": 0.2}
    assert merged["stop_s"] == dict.fromkeys(lifecycle.SIGNALS, 3.0) and len(merged["runs"]) == 3


def test_a_crash_loop_is_told_once_per_loop():
    loops = CrashLoops(limit=3, window_s=60)
    assert [loops.crashed("asr", t) for t in (0, 10, 20, 25)] == [0, 0, 3, 0]  # told at the third, once
    assert loops.crashed("vad", 25) == 0  # each stage counts its own
    # Quiet for longer than the window: the loop is over, and the next one is told again.
    assert [loops.crashed("asr", t) for t in (200, 201, 202)] == [0, 0, 3]


def test_crashes_further_apart_than_the_window_are_no_loop():
    loops = CrashLoops(limit=3, window_s=60)
    assert [loops.crashed("keys", t) for t in (0, 40, 80, 120, 160)] == [0, 0, 0, 0, 0]


def write_lines(path: Path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_the_telling_line_comes_from_the_latest_run(tmp_path):
    log = tmp_path / "asr.log"
    write_lines(
        log,
        '{"event": "starting", "level": "info"}',
        "voxkey asr: an old problem, since fixed",
        '{"event": "starting", "level": "info"}',
        '{"event": "loaded", "level": "info"}',
        "Traceback (most recent call last):",
        '  File "stages/asr.py", line 1, in handle',
        "RuntimeError: CUDA is not available",
        '{"event": "stopping", "level": "info"}',
    )
    assert last_error(log) == "RuntimeError: CUDA is not available"
    write_lines(
        log, '{"event": "starting", "level": "info"}', '{"event": "no keyboard", "level": "error", "detail": "F9"}'
    )
    assert last_error(log) == "no keyboard (F9)"


def test_a_stage_killed_by_a_signal_is_told_by_supervisords_account(tmp_path):
    write_lines(tmp_path / "asr.log", '{"event": "starting", "level": "info"}', '{"event": "loaded", "level": "info"}')
    write_lines(
        tmp_path / "supervisord.log",
        "2026-11-24 06:40:01,234 INFO spawned: 'asr' with pid 12",
        "2026-11-24 06:40:09,100 WARN exited: asr (terminated by SIGKILL; not expected)",
    )
    assert last_error(tmp_path / "asr.log") == "exited: asr (terminated by SIGKILL; not expected)"


def test_loading_is_told_stage_by_stage_then_ready_once():
    loading = Loading()
    said = []
    for stage in wiring.STAGES:
        said += [event.message for event in loading.on_heartbeat(stage, Heartbeat(ready=True, pid=1))]
        said += [
            event.message for event in loading.on_heartbeat(stage, Heartbeat(ready=True, pid=1))
        ]  # again: nothing new
    assert said[0] == f"loading: 1 of 7 stages ready, waiting for {', '.join(wiring.STAGES[1:])}"
    assert len(said) == len(wiring.STAGES) and said[-1] == "ready: speak, and it is typed"
    assert loading.on_heartbeat("asr", Heartbeat(ready=False, pid=2))[0].message.startswith("asr is not ready")
    assert [e.message for e in loading.on_heartbeat("asr", Heartbeat(ready=True, pid=2))] == [
        "ready: speak, and it is typed"
    ]
    # Back under a new pid before its not-ready beats reached this follower: said anyway.
    assert [e.message for e in loading.on_heartbeat("asr", Heartbeat(ready=True, pid=3))] == [
        "asr restarted (pid 3)",
        "ready: speak, and it is typed",
    ]


# --- real processes ---------------------------------------------------------------------------


def wait_for(condition, seconds: float, what: str):
    return sessions.wait_until(condition, seconds, what)


class Up:
    """`voxkey up` in its own run directory, its stderr in a file read as it grows."""

    def __init__(self, tmp_path: Path, *settings: str, env: dict | None = None):
        self.run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
        self.at = ["--set", f"bus.run_dir={self.run_dir}"]
        self.typed = tmp_path / "typed.txt"
        self.stderr_path = tmp_path / "up.stderr"
        self.stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen(
            [
                *VOXKEY,
                "up",
                *self.at,
                "--sink",
                f"file:{self.typed}",
                "--set",
                "cli.notify=false",
                *[arg for setting in settings for arg in ("--set", setting)],
            ],
            cwd=REPO,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.supervisor = Supervisor(self.run_dir, self.run_dir / "run.toml")

    def said(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self) -> dict[str, int]:
        """Every stage's pid once `up` has said it is ready."""

        def ready():
            assert self.process.poll() is None, self.said()
            return "voxkey: ready" in self.said()

        wait_for(ready, 180, "voxkey up to say it is ready")
        return self.pids()

    def pids(self) -> dict[str, int]:
        return {name: info["pid"] for name, info in self.supervisor.states().items()}

    def running_pid(self, stage: str, not_pid: int = 0) -> int:
        def running():
            info = self.supervisor.states().get(stage, {})
            return info.get("statename") == "RUNNING" and info["pid"] != not_pid and info["pid"]

        return wait_for(running, 60, f"{stage} running again")

    def end(self, how=signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(how)
        code = self.process.wait(60)
        self.stderr.close()
        return code


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_each_signal_stops_everything_and_releases_the_microphone(how, microphone, tmp_path):
    # Where systemd (Type=notify) would listen: up tells it how loading goes and when it is ready.
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    up = Up(tmp_path, env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        stages = up.wait_ready()
        supervisord = up.supervisor.rpc.supervisor.getPID()
        assert sessions.recording_clients() == 1  # capture holds the microphone
    finally:
        code = up.end(how)
    said = up.said()
    assert code == 0, said
    # Loading was told as it went, and ready only once everything was.
    assert said.index("voxkey: loading: 1 of 7 stages ready") < said.index("voxkey: ready")
    systemd.setblocking(False)
    told = []
    with contextlib.suppress(BlockingIOError):
        while True:
            told.append(systemd.recv(4096).decode())
    systemd.close()
    # The status is the latest event at each moment (a heartbeat may bring two at once).
    loading = next(index for index, said in enumerate(told) if said.startswith("STATUS=loading: "))
    assert loading < told.index("READY=1")
    assert told.count("READY=1") == 1 and told[-1] == "STOPPING=1"
    wait_for(lambda: not any(alive(pid) for pid in [supervisord, *stages.values()]), 30, "every process gone")
    wait_for(lambda: sessions.recording_clients() == 0, 30, "the microphone released")


def test_a_crash_loop_is_reported_and_supervisord_killed_stops_everything(tmp_path):
    up = Up(tmp_path, f"stages.capture.source={AUDIO / 'jfk.flac'}", "stages.capture.realtime=true")
    try:
        stages = up.wait_ready()
        asr = stages["asr"]
        for _ in range(3):  # killed outright three times: as the kernel's OOM killer would
            os.kill(asr, signal.SIGKILL)
            asr = up.running_pid("asr", not_pid=asr)
        wait_for(lambda: "keeps crashing" in up.said(), 30, "the crash loop reported")
        line = next(line for line in up.said().splitlines() if "keeps crashing" in line)
        assert line == (
            "voxkey: stage asr keeps crashing (3 crashes in 60 s, last terminated by SIGKILL): "
            "exited: asr (terminated by SIGKILL; not expected)"
        )
        assert up.process.poll() is None  # the others go on: it was ready, and asr is back

        supervisord = up.supervisor.rpc.supervisor.getPID()
        stages = up.pids()
        os.kill(supervisord, signal.SIGKILL)
        code = up.process.wait(60)
    finally:
        up.end()
    assert code == 1
    assert (
        f"voxkey: supervisord exited unexpectedly; see {up.run_dir / 'supervisord.out'}; every stage stopped"
        in up.said()
    )
    wait_for(lambda: not any(alive(pid) for pid in stages.values()), 30, "no stage left behind")


def test_a_swap_that_cannot_start_rolls_back_and_typing_goes_on(microphone, tmp_path):
    models = tmp_path / "no-models"  # whisper-base.en is not installed here
    up = Up(tmp_path, env={"VOXKEY_MODELS_DIR": str(models)})
    try:
        before = up.wait_ready()
        run_toml = (up.run_dir / "run.toml").read_bytes()
        swap = voxkey(
            "swap",
            "asr",
            "--set",
            "model=whisper-base.en",
            "--run-dir",
            up.run_dir,
            env={**os.environ, "VOXKEY_MODELS_DIR": str(models)},
        )
        assert swap.returncode == 1
        lines = swap.stderr.strip().splitlines()
        assert len(lines) == 1, swap.stderr
        assert lines[0].startswith("voxkey: asr cannot start: voxkey asr: model whisper-base.en not found at ")
        assert "run `voxkey models fetch whisper-base.en`; asr is back on its previous settings (pid " in lines[0]
        assert (up.run_dir / "run.toml").read_bytes() == run_toml
        after = up.running_pid("asr", not_pid=before["asr"])
        assert f"(pid {after})" in lines[0]

        assert up.process.poll() is None, up.said()
        wait_for(lambda: up.said().count("voxkey: ready") == 2, 60, "asr ready again, and up saying so")
        subprocess.run(["paplay", "-d", microphone, str(AUDIO / "dictate_report.wav")], check=True, timeout=30)
        wait_for(lambda: utterances_typed(up.run_dir) >= 1, 60, "the sentence to be typed")
        assert_said(up.typed.read_text(), spoken("dictate_report.wav"))
    finally:
        assert up.end() == 0, up.said()


def test_a_failed_replay_leaves_no_run_directory(tmp_path):
    result = voxkey(
        "replay",
        AUDIO / "dictate_report.wav",
        "--set",
        "stages.asr.model=/nowhere/whisper",
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("voxkey: stage asr cannot start: ") and "/nowhere/whisper" in error
    assert error.endswith("; voxkey replay --keep keeps the stages' logs")
    assert not list(tmp_path.glob("voxkey-*"))
