"""supervisord runs each stage as its own process and brings back one that dies."""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import structlog
from conftest import AUDIO, REPO, VOXKEY, assert_said, spoken, utterances_typed, voxkey

from bus import config as configuration
from bus import wiring
from bus.peer import Peer
from voxkey.supervise import Supervisor


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkilled_stage_is_restarted_while_the_others_keep_running():
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    settings = [f"bus.run_dir={run_dir}", f"stages.capture.source={AUDIO / 'jfk.flac'}", "stages.capture.realtime=true"]
    up = subprocess.Popen(
        [*VOXKEY, "up", *sum((["--set", s] for s in settings), [])], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    supervisor = Supervisor(run_dir, run_dir / "run.toml")
    config = configuration.load(overrides=[settings[0]])
    watcher = Peer("watcher", config, ["asr"], [], structlog.get_logger())
    try:

        def all_running():
            states = supervisor.states()
            running = {name: info["pid"] for name, info in states.items() if info["statename"] == "RUNNING"}
            return running if set(running) == set(wiring.STAGES) else None

        before = wait_for(all_running, 60, "every stage RUNNING")
        assert len(set(before.values())) == len(wiring.STAGES)  # one process each
        os.kill(before["asr"], signal.SIGKILL)
        after = wait_for(lambda: (r := all_running()) and r["asr"] != before["asr"] and r, 30, "asr restarted")
        assert {k: v for k, v in after.items() if k != "asr"} == {k: v for k, v in before.items() if k != "asr"}

        def new_asr_ready():
            watcher.receive(100)
            beat = watcher.heard["asr"]
            return beat is not None and beat.pid == after["asr"] and beat.ready

        wait_for(new_asr_ready, 60, "the restarted asr to report ready")
    finally:
        watcher.close()
        up.send_signal(signal.SIGTERM)  # as a service manager stops it
        _, stderr = up.communicate(timeout=30)
    assert up.returncode == 0, stderr[-2000:]
    for pid in after.values():  # the stages went with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_killed_up_leaves_no_stage_behind():
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    settings = [f"bus.run_dir={run_dir}", f"stages.capture.source={AUDIO / 'jfk.flac'}", "stages.capture.realtime=true"]
    up = subprocess.Popen(
        [*VOXKEY, "up", *sum((["--set", s] for s in settings), [])], cwd=REPO, stderr=subprocess.DEVNULL
    )
    supervisor = Supervisor(run_dir, run_dir / "run.toml")
    running = wait_for(
        lambda: (
            (states := supervisor.states())
            and len(states) == len(wiring.STAGES)
            and all(info["pid"] for info in states.values())
            and states
        ),
        60,
        "every stage started",
    )
    up.kill()  # SIGKILL: up can do nothing about it
    up.wait()

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(info["pid"]) for info in running.values()), 30, "every stage stopped with voxkey up")


def test_up_without_the_microphone_names_the_problem_and_lists_devices(tmp_path):
    """The real PortAudio query fails for a device that is not there."""
    run_dir = tempfile.mkdtemp(prefix="voxkey-test-")
    result = voxkey(
        "up", "--set", f"bus.run_dir={run_dir}", "--set", "stages.capture.source=mic:NoSuchMicrophone", timeout=120
    )
    assert result.returncode != 0
    assert (
        "stage capture cannot start" in result.stderr
        and "NoSuchMicrophone" in result.stderr
        and "devices:" in result.stderr
    )


def test_up_refuses_a_socket_directory_others_can_open(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    result = voxkey("up", "--set", f"bus.run_dir={shared}")
    assert result.returncode != 0 and "chmod 700" in result.stderr


def test_swap_names_what_is_wrong(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    unknown = voxkey("swap", "ears", "--run-dir", run_dir)
    assert unknown.returncode != 0 and "unknown stage 'ears'" in unknown.stderr
    not_running = voxkey("swap", "asr", "--set", "beam_size=1", "--run-dir", run_dir)
    assert not_running.returncode != 0 and "no running voxkey" in not_running.stderr
    for command in (["mode", "chat"], ["listen", "off"], ["status"]):
        nothing = voxkey(*command, "--set", f"bus.run_dir={tmp_path / 'never'}")
        assert nothing.returncode == 1
        assert nothing.stderr.strip() == f"voxkey: no running voxkey in {tmp_path / 'never'}: start one with voxkey up"


def test_up_types_what_the_microphone_hears(microphone, tmp_path):
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    typed = tmp_path / "typed.txt"
    up = subprocess.Popen(
        [*VOXKEY, "up", "--set", f"bus.run_dir={run_dir}", "--sink", f"file:{typed}"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    config = configuration.load(overrides=[f"bus.run_dir={run_dir}"])
    watcher = Peer("watcher", config, list(wiring.STAGES), [], structlog.get_logger())
    try:

        def all_ready():
            watcher.receive(100)
            return all(beat is not None and beat.ready for beat in watcher.heard.values())

        wait_for(all_ready, 90, "every stage ready")
        subprocess.run(["paplay", "-d", microphone, str(AUDIO / "dictate_report.wav")], check=True, timeout=30)
        wait_for(lambda: utterances_typed(run_dir) >= 1, 30, "the sentence to be typed")
        assert_said(typed.read_text(), spoken("dictate_report.wav"))
    finally:
        watcher.close()
        up.send_signal(signal.SIGINT)
        _, stderr = up.communicate(timeout=30)
    assert up.returncode == 0, stderr[-2000:]
