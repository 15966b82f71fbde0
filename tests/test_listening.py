"""Control of listening (`voxkey listen on|off|toggle|hold|release`), in capture.

The rule is pure; capture's handling is tested in-process on a real microphone (a
PulseAudio server whose default source is a null sink's monitor: no hardware is
faked), frames in and out; and `voxkey up` is driven as a user would, through the CLI.
"""

import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import structlog
from conftest import AUDIO, REPO, VOXKEY, assert_said, spoken, utterances_typed, voxkey, words
from harness import Harness

from bus import config as configuration
from bus import wiring
from bus.asking import ask
from bus.frames import SAMPLE_RATE, now_ns
from bus.peer import Peer
from bus.stage import StageError
from stages.capture import audio
from stages.capture.hotkey import hotkey_command
from stages.capture.listening import Listening, listen
from stages.capture.stage import Capture


@pytest.mark.parametrize(
    "before, command, after",
    [
        (Listening(True), "off", Listening(False)),
        (Listening(False), "on", Listening(True)),
        (Listening(True), "toggle", Listening(False)),
        (Listening(False), "toggle", Listening(True)),
        (Listening(False), "hold", Listening(True, held=True)),
        (Listening(True, held=True), "release", Listening(False)),
        # A push-to-talk key used while listening anyway changes nothing.
        (Listening(True), "hold", Listening(True)),
        (Listening(True), "release", Listening(True)),
        # `on` and `off` end a hold.
        (Listening(True, held=True), "on", Listening(True)),
        (Listening(True, held=True), "off", Listening(False)),
    ],
)
def test_listening_follows_commands(before, command, after):
    assert listen(before, command) == after


def test_an_unknown_command_names_the_valid_ones():
    with pytest.raises(ValueError, match="use on, off, toggle, hold, release"):
        listen(Listening(), "pause")


def test_listen_commands_are_taken_in_the_order_given_not_the_order_they_arrived(tmp_path):
    """A quick push-to-talk whose `hold` process started late: its `release` arrives
    first. The hold, given before it, is ignored, so the microphone is not left on;
    the order survives a restart of capture."""
    capture = Harness(
        Capture, tmp_path, f'stages.capture.source="{AUDIO / "jfk.flac"}"', "stages.capture.listening=false"
    )
    pressed_ns = now_ns()
    released_ns = pressed_ns + 80_000_000
    assert capture.stage.on_control("listen", {"how": "release", "since_ns": released_ns}) == "not listening"
    late = capture.stage.on_control("listen", {"how": "hold", "since_ns": pressed_ns})
    assert late == "not listening (hold was given before the last listen command: ignored)"
    assert capture.stage.peer.counters["listen_commands_out_of_order"] == 1
    capture.crash()
    assert capture.stage.on_control("listen", {"how": "hold", "since_ns": pressed_ns}).endswith("ignored)")
    assert capture.stage.on_control("status", {})["progress"]["listening"] is False
    assert capture.stage.on_control("listen", {"how": "hold", "since_ns": released_ns + 1}) == "listening"


def wait_until(condition, seconds: float, what: str, step=None):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        step() if step else time.sleep(0.05)
    return result


def test_a_recording_pauses_like_a_tape(tmp_path):
    recording = AUDIO / "dictate_meeting.wav"
    capture = Harness(Capture, tmp_path, f'stages.capture.source="{recording}"', "stages.capture.listening=false")
    for _ in range(5):
        capture.stage.tick()
    assert [f.topic for f in capture.published()] == ["stream-start"]  # nothing heard while off
    capture.stage.on_control("listen", {"how": "on"})
    wait_until(lambda: capture.published("stream-stop"), 10, "the recording was sent", capture.stage.tick)
    sent = np.concatenate([np.frombuffer(f.payload, "<i2") for f in capture.published("audio")])
    whole = np.concatenate(list(audio.fixed_frames(audio.read_pcm16(str(recording), print), 512)))
    assert np.array_equal(sent, whole)  # paused and resumed, no sample lost or repeated


def stream_of_frames(frames) -> list[tuple[str, str, int, int]]:
    """(topic, stream, first sample, end) of each frame capture handed to vad."""
    rows = []
    for frame in frames:
        body = frame.body
        if frame.topic == "audio":
            rows.append(("audio", body.stream, body.offset, body.offset + len(frame.payload) // 2))
        elif frame.topic == "stream-start":
            rows.append(("start", body.stream, body.offset, body.offset))
        elif frame.topic == "stream-stop":
            rows.append(("stop", body.stream, body.samples, body.samples))
    return rows


def test_microphone_off_ends_the_stream_and_on_keeps_what_was_said_since_the_command(microphone, tmp_path):
    capture = Harness(Capture, tmp_path, "stages.capture.source=mic")
    stage = capture.stage
    try:
        wait_until(lambda: len(capture.published("audio")) >= 10, 20, "audio while listening", stage.tick)
        stage.on_control("listen", {"how": "off"})
        wait_until(
            lambda: stage.peer.counters["samples_not_listened"] >= SAMPLE_RATE,
            20,
            "a second not listened to",
            stage.tick,
        )
        sent_while_off = len(capture.published("audio"))
        # The command was given half a second before it arrived (a slow key binding).
        given_ns = now_ns() - 500_000_000
        stage.on_control("listen", {"how": "hold", "since_ns": given_ns})
        after_on = capture.published()[capture.published().index(capture.published("stream-start")[-1]) :]
        kept = [f for f in after_on if f.topic == "audio"]
        assert kept, "the audio heard since the command was given goes at once"
        assert all(f.marks["capture"] >= given_ns for f in kept)
        assert len(kept) * 512 <= SAMPLE_RATE  # only since the command: not the whole second kept
        wait_until(
            lambda: len(capture.published("audio")) >= sent_while_off + len(kept) + 10, 20, "audio after on", stage.tick
        )
        stage.on_control("listen", {"how": "release"})
        stage.tick()
    finally:
        stage.teardown()

    rows = stream_of_frames(capture.published())
    kinds = [kind for kind, *_ in rows]
    assert kinds[0] == "start" and kinds.count("start") == 2 and kinds.count("stop") == 2 and kinds[-1] == "stop"
    streams = list(dict.fromkeys(stream for _, stream, *_ in rows))
    assert len(streams) == 2, "on after off is a new stream: vad completes the first"
    positions = [f.pos for f in capture.published()]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), "positions only grow"
    for stream in streams:
        own = [row for row in rows if row[1] == stream]
        (_, _, begins, _), (_, _, ends, _) = own[0], own[-1]
        audio_rows = [row for row in own if row[0] == "audio"]
        assert audio_rows[0][2] == begins and audio_rows[-1][3] == ends
        assert all(a[3] == b[2] for a, b in zip(audio_rows, audio_rows[1:])), "a stream's audio is contiguous"


def test_listening_survives_a_restart(tmp_path):
    recording = AUDIO / "dictate_meeting.wav"
    capture = Harness(Capture, tmp_path, f'stages.capture.source="{recording}"')
    capture.stage.on_control("listen", {"how": "hold"})  # on already: no hold
    capture.stage.on_control("listen", {"how": "off"})
    capture.crash()
    assert capture.stage.listening == Listening(False)
    assert capture.stage.on_control("status", {})["progress"]["listening"] is False
    assert capture.stage.on_control("listen", {"how": "toggle"}) == "listening"
    capture.crash()
    assert capture.stage.listening == Listening(True)


# --- voxkey up, as a user drives it ------------------------------------------------------


def samples_in(name: str) -> int:
    return sum(len(block) for block in audio.read_pcm16(str(AUDIO / name), print))


def test_up_types_nothing_while_off_and_keeps_the_first_word_when_turned_on(microphone, tmp_path):
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    typed = tmp_path / "typed.txt"
    at = ["--set", f"bus.run_dir={run_dir}"]
    up = subprocess.Popen(
        # Not a terminal: what it typed is shown only with log.user_text (tests/test_log_privacy.py).
        [*VOXKEY, "up", *at, "--sink", f"file:{typed}", "--set", "cli.notify=false", "--set", "log.user_text=true"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    config = configuration.load(overrides=[f"bus.run_dir={run_dir}"])
    watcher = Peer("watcher", config, list(wiring.STAGES), [], structlog.get_logger())

    def not_listened() -> int:
        watcher.receive(100)
        beat = watcher.heard["capture"]
        return beat.counters.get("samples_not_listened", 0) if beat else 0

    def play(name: str) -> None:
        subprocess.run(["paplay", "-d", microphone, str(AUDIO / name)], check=True, timeout=30)

    def heard_past(samples: int) -> None:
        """Capture has taken (and not listened to) this many more samples than now."""
        target = not_listened() + samples
        wait_until(lambda: not_listened() >= target, 30, "capture took the audio")

    try:
        wait_until(
            lambda: (watcher.receive(100), all(b is not None and b.ready for b in watcher.heard.values()))[1],
            120,
            "every stage ready",
        )
        off = voxkey("listen", "off", *at)
        assert off.returncode == 0 and "not listening" in off.stderr
        play("dictate_meeting.wav")  # said while off: never typed
        heard_past(SAMPLE_RATE // 2)  # past what the audio server still held
        # Turned on by a command given as the speech began, which arrived after it ended:
        # everything since the command was given is heard.
        given_ns = now_ns()
        play("dictate_report.wav")
        heard_past(SAMPLE_RATE // 2)
        assert ask(config, "capture", "listen", {"how": "hold", "since_ns": given_ns}) == "listening"
        wait_until(lambda: utterances_typed(run_dir) >= 1, 60, "the sentence to be typed")
        assert voxkey("listen", "release", *at).returncode == 0
        assert_said(typed.read_text(), spoken("dictate_report.wav"))
        typed_start = typed.read_text().strip()[:20]  # voxkey up shows what it typed

        status = voxkey("status", *at)
        assert status.returncode == 0, status.stderr
        assert "listening: off" in status.stdout and "mode:      dictate" in status.stdout
        heard = status.stdout.split("heard:")[1].splitlines()[0]  # the utterance's text, clipped to the line
        assert words(heard)[:3] == words(typed.read_text())[:3], heard
        assert "ms after speech ended" in status.stdout and "typing:    file" in status.stdout
        for stage in wiring.STAGES:
            assert f"  {stage} " in status.stdout and "RUNNING" in status.stdout

        # A second voxkey up on the same run directory is refused and changes nothing.
        kept = {path.name: path.read_bytes() for path in (run_dir / "run.toml", run_dir / "capture.state.json")}
        second = voxkey("up", *at, "--set", "stages.router.mode=chat")
        assert second.returncode == 1 and "voxkey is already running in" in second.stderr
        assert {name: (run_dir / name).read_bytes() for name in kept} == kept
    finally:
        watcher.close()
        up.send_signal(signal.SIGINT)
        _, stderr = up.communicate(timeout=30)
    assert up.returncode == 0, stderr[-2000:]
    # What voxkey up told its user, line by line.
    assert "voxkey: ready: speak" in stderr and "voxkey: not listening" in stderr and "voxkey: listening" in stderr
    assert "typed by router" in stderr and typed_start in stderr


# --- the built-in hotkey -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, action, command",
    [
        (1, "hold", "hold"),
        (0, "hold", "release"),
        (2, "hold", ""),
        (1, "toggle", "toggle"),
        (0, "toggle", ""),
        (2, "toggle", ""),
    ],
)
def test_key_events_become_listen_commands(value, action, command):
    assert hotkey_command(value, action) == command


def test_a_hotkey_without_readable_keyboards_says_how_to_get_them_and_capture_runs_on(tmp_path):
    """No /dev/input exists on this machine: the key itself is not exercised here."""
    recording = AUDIO / "dictate_meeting.wav"
    capture = Harness(Capture, tmp_path, f'stages.capture.source="{recording}"', 'stages.capture.hotkey="F9"')
    status = capture.stage.on_control("status", {})["progress"]
    assert "hotkey F9 unavailable" in status["hotkey"] and "input group" in status["hotkey"]
    assert capture.stage.peer.counters["hotkey_unavailable"] == 1
    assert capture.stage.on_control("listen", {"how": "off"}) == "not listening"  # commands still work


def test_an_unknown_hotkey_is_refused_with_examples(tmp_path):
    with pytest.raises(StageError, match="unknown hotkey 'F99'.*F9"):
        Harness(
            Capture, tmp_path, f'stages.capture.source="{AUDIO / "dictate_meeting.wav"}"', 'stages.capture.hotkey="F99"'
        )
