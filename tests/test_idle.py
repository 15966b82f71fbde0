"""Cheap when idle: vad judges silence in batches and says so; capture gathers a
microphone's frames while vad hears silence, and takes nothing while off.

Frames in, frames out: vad in-process on real recordings with the real model; capture
in-process on a real microphone (a PulseAudio source that hears silence, see
tests/test_listening.py). What is cut must be exactly what window-by-window judging
cuts: batching moves when silence is judged, never what is heard.
"""

import os

import numpy as np
import pytest
from conftest import AUDIO
from harness import Harness
from test_listening import stream_of_frames, wait_until

from bus.frames import SAMPLE_RATE, Ack, AudioChunk, Frame, StreamStart, StreamStop
from stages.capture import audio
from stages.capture.stage import Capture
from stages.vad.segmenting import WINDOW
from stages.vad.stage import Vad

FRAME_NS = WINDOW * 1_000_000_000 // SAMPLE_RATE
BASE_NS = 1_000_000_000_000


def run_vad(tmp_path, samples: np.ndarray, batch_ms: int, frame_windows: int = 1, stop: bool = True) -> Harness:
    """Stream "s" to a harnessed vad in frames of `frame_windows` windows, each marked
    with the capture time of its last sample, as a live capture would."""
    run_dir = tmp_path / f"vad-{len(list(tmp_path.iterdir()))}"
    run_dir.mkdir()
    vad = Harness(Vad, run_dir, f"stages.vad.silent_batch_ms={batch_ms}")
    vad.send("capture", StreamStart(stream="s", offset=0), key="start@s", pos=0)
    size = frame_windows * WINDOW
    whole = len(samples) // size * size
    for offset in range(0, whole, size):
        vad.send(
            "capture",
            AudioChunk(stream="s", offset=offset),
            payload=samples[offset : offset + size].tobytes(),
            marks={"capture": BASE_NS + (offset + size) // WINDOW * FRAME_NS},
            key=str(offset),
            pos=offset + size,
        )
    if stop:
        vad.send("capture", StreamStop(stream="s", samples=whole), key="stop@s", pos=whole + 1)
    return vad


def cut(vad: Harness) -> list[tuple]:
    """Every utterance and guess vad sent: where, what audio, and its marks."""
    return [
        (f.topic, f.body.start_sample, f.payload, f.marks["speech_start"], f.marks["speech_end"])
        for f in vad.published()
        if f.topic in ("speech", "guess")
    ]


def voices(vad: Harness) -> list[tuple[int, int]]:
    return [(f.body.offset, f.marks["capture"]) for f in vad.published("voice")]


@pytest.fixture(scope="module")
def session() -> np.ndarray:
    return audio.read_all(AUDIO / "session_dictation.wav")


def test_batched_silence_cuts_exactly_what_window_by_window_judging_cuts(tmp_path, session):
    """The same utterances, guesses, audio and capture marks, and the same onsets, as
    judging every window as it arrives; also from frames of eight windows, whose
    windows are marked by when their own last sample was captured."""
    each = run_vad(tmp_path, session, batch_ms=32)
    assert len(each.published("speech")) == 5
    for batch_ms, frame_windows in ((256, 1), (256, 8), (96, 8)):
        batched = run_vad(tmp_path, session, batch_ms, frame_windows)
        assert cut(batched) == cut(each), (batch_ms, frame_windows)
        assert voices(batched) == voices(each), (batch_ms, frame_windows)


def test_the_windows_waiting_for_a_batch_are_judged_when_the_stream_stops(tmp_path, session):
    """A stream that stops within a batch of its first speech still gives its utterance."""
    each = run_vad(tmp_path, session, batch_ms=32)
    onset = each.published("speech")[0].body.onset_sample
    end = (onset // WINDOW + 9) * WINDOW  # 9 windows of speech, then stopped
    each = cut(run_vad(tmp_path, session[:end], batch_ms=32))
    assert len(each) == 1, "the short stream holds an utterance"
    assert [u[1:3] for u in cut(run_vad(tmp_path, session[:end], batch_ms=1024))] == [u[1:3] for u in each]


def test_silence_is_judged_and_acknowledged_a_batch_at_a_time_speech_window_by_window(tmp_path, session):
    """While silent, vad runs Silero and acknowledges once per batch of eight windows;
    once speech has begun, every window is judged as it arrives, and nothing is
    acknowledged until the utterance is cut."""
    vad = Harness(Vad, tmp_path, "stages.vad.silent_batch_ms=256")
    vad.send("capture", StreamStart(stream="s", offset=0), key="start@s", pos=0)
    judged, acks, speaking = [], [], []
    onset = run_vad(tmp_path, session, batch_ms=32).published("speech")[0].body.onset_sample
    for offset in range(0, onset + 40 * WINDOW, WINDOW):
        before = len(vad.acks("capture"))
        vad.send("capture", AudioChunk(stream="s", offset=offset), payload=session[offset : offset + WINDOW].tobytes())
        judged.append(vad.stage.next_offset)
        acks.append(len(vad.acks("capture")) - before)
        speaking.append(vad.stage.segmenter.in_speech)
    first_speech = speaking.index(True)
    silent = range(first_speech)
    assert all(judged[i] == (i + 1) // 8 * 8 * WINDOW for i in silent), "silence waits for a batch of 8"
    acked = [i for i in silent if acks[i]]
    # Once past the pre-roll it keeps, every batch of silence judged is acknowledged.
    assert acked and acked == list(range(acked[0], first_speech, 8)) and (acked[0] + 1) % 8 == 0
    assert (first_speech + 1) * WINDOW - onset <= 8 * WINDOW, "onset heard at most a batch late"
    in_speech = range(first_speech, len(judged))
    assert all(judged[i] == (i + 1) * WINDOW for i in in_speech), "speech is judged window by window"
    assert not any(acks[i] for i in in_speech if speaking[i])


def test_a_microphone_is_gathered_while_vad_acknowledges_and_sent_frame_by_frame_once_it_stops(microphone, tmp_path):
    capture = Harness(Capture, tmp_path, "stages.capture.source=mic", "stages.capture.silent_frames=8")
    stage = capture.stage
    sizes = lambda: [len(f.payload) // 2 for f in capture.published("audio")]  # noqa: E731
    # vad hearing silence, at once: each audio frame is acknowledged as it is sent.
    acknowledging, send = [False], stage.delivery._send

    def sent(frame: Frame) -> None:
        send(frame)
        if acknowledging[0] and frame.topic == "audio":
            stage.arrive(Frame(body=Ack(topic="audio", keys=[frame.key]), src="vad", to="capture"))

    stage.delivery._send = sent
    try:
        wait_until(lambda: len(sizes()) >= 3, 20, "audio while listening", stage.tick)
        assert set(sizes()) == {512}, "nothing acknowledged yet: frame by frame"
        acknowledging[0] = True
        before = len(sizes())
        wait_until(lambda: len(sizes()) >= before + 4, 20, "frames acknowledged", stage.tick)
        assert sizes()[before + 1 :] == [8 * 512] * (len(sizes()) - before - 1), "gathered by eight"
        # vad stops acknowledging (speech has begun): the frame gathered after the last
        # acknowledgement goes, and from then on each frame leaves as soon as it is taken.
        acknowledging[0] = False
        before = len(sizes())
        wait_until(lambda: len(sizes()) >= before + 10, 20, "frames unacknowledged", stage.tick)
        assert sizes()[before:] == [8 * 512] + [512] * (len(sizes()) - before - 1)
        # Gathered again, then turned off: what was gathered goes before the stream stops.
        acknowledging[0] = True
        wait_until(lambda: len(stage.gathered) >= 3, 20, "frames gathered", stage.tick)
        gathered = sum(len(block) for block, _ in stage.gathered)
        published = len(capture.published())
        stage.on_control("listen", {"how": "off"})
        assert not stage.gathered
        *sent_at_off, stop = capture.published()[published:]
        assert stop.topic == "stream-stop"
        # What the microphone still held is taken too, and may fill a gathered frame first.
        assert sum(len(frame.payload) // 2 for frame in sent_at_off if frame.topic == "audio") >= gathered
    finally:
        stage.teardown()
    rows = stream_of_frames(capture.published())
    audio_rows = [row for row in rows if row[0] == "audio"]
    assert all(a[3] == b[2] for a, b in zip(audio_rows, audio_rows[1:])), "the audio is contiguous"
    assert rows[-1][2] == audio_rows[-1][3], "the stream stops after its last sample"


def test_off_the_stage_is_not_woken_and_converts_nothing(microphone, tmp_path):
    """While off, the reader keeps raw blocks: nothing is queued, the eventfd is not
    written, yet the audio is accounted for and the last seconds are there for `on`."""
    capture = Harness(Capture, tmp_path, "stages.capture.source=mic", "stages.capture.listening=false")
    stage = capture.stage
    try:
        wait_until(lambda: stage.peer.counters["samples_not_listened"] >= SAMPLE_RATE, 20, "a second off", stage.tick)
        assert stage.source.blocks.empty()
        with pytest.raises(BlockingIOError):
            os.eventfd_read(stage.source.wake_fd)
        assert len(stage.source.kept) >= SAMPLE_RATE // 512 - 1
        kept_times = [captured_ns for _, captured_ns in stage.source.kept]
        assert {len(block) for block, _ in stage.source.kept} == {stage.source.block}, "taken in whole blocks"
        assert kept_times == sorted(kept_times), "each block dated by when its last sample came"
        assert not capture.published("audio")
        stage.on_control("listen", {"how": "on", "since_ns": stage.source.kept[-5][1]})
        kept = capture.published("audio")
        assert 4 <= len(kept) <= 6, "the blocks captured since the command, converted on `on`"
        assert not stage.source.kept
    finally:
        stage.teardown()


def test_a_take_of_many_blocks_is_cut_into_blocks_dated_as_if_read_one_by_one():
    from stages.capture.microphone import cut_blocks

    taken = np.arange(3 * 100 + 40, dtype=np.int16)
    blocks = cut_blocks(taken, 100, taken_ns=10_000_000_000, rate=1000)
    assert [len(block) for block, _ in blocks] == [100, 100, 100, 40]
    assert np.array_equal(np.concatenate([block for block, _ in blocks]), taken)
    # At 1000 frames/s the take's last sample came at its end, and each block's last
    # sample 1 ms earlier for every frame that followed it.
    assert [at for _, at in blocks] == [9_760_000_000, 9_860_000_000, 9_960_000_000, 10_000_000_000]
