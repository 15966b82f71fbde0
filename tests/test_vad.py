"""Silero v6 streaming and the segmenter, on real recordings with the real model."""

import os
import time

import numpy as np
from conftest import AUDIO, LoneStage
from harness import Harness

from bus.frames import SAMPLE_RATE, Ack, AudioChunk, Frame, StreamStart, StreamStop
from bus.progress import progress_of
from stages.capture import audio
from stages.vad.segmenting import WINDOW, Segmenter, StreamingSilero, silero_path
from stages.vad.stage import HELD_FILES, Vad


def segment(samples: np.ndarray, with_guesses: bool = False, **settings) -> list:
    """The utterances vad cuts, and with `with_guesses` the guesses it hands out, in order."""
    model, segmenter, found = StreamingSilero(silero_path()), Segmenter(**settings), []
    for offset in range(0, len(samples) - WINDOW + 1, WINDOW):
        window = samples[offset : offset + WINDOW]
        found += segmenter.push(window, model(window.astype(np.float32) / 32768), offset, offset)
    return [u for u in found + segmenter.flush() if with_guesses or not u.guess]


def feed(vad, samples: np.ndarray, start: int = 0) -> None:
    """Capture's audio of stream "s", from sample `start`, to a harnessed or a real vad
    (both take frames the same way), handed over reliably and positioned by sample."""
    for offset in range(start, start + len(samples) - WINDOW + 1, WINDOW):
        chunk = samples[offset - start : offset - start + WINDOW]
        vad.send(
            "capture",
            AudioChunk(stream="s", offset=offset),
            payload=chunk.tobytes(),
            key=str(offset),
            pos=offset + WINDOW,
        )


def held_files(run_dir) -> list:
    return sorted(run_dir.glob(HELD_FILES))


def test_noise_gives_no_utterance():
    assert segment(audio.read_all(AUDIO / "noise_only.wav")) == []


def test_session_gives_exactly_five_utterances_in_order():
    utterances = segment(audio.read_all(AUDIO / "session_dictation.wav"))
    assert len(utterances) == 5
    starts = [u.start_sample for u in utterances]
    assert starts == sorted(starts)
    assert all(u.part == 0 and u.last_part for u in utterances)


def test_pre_roll_keeps_the_audio_before_onset():
    samples = audio.read_all(AUDIO / "session_dictation.wav")
    without = segment(samples, pre_roll_ms=0)[1]
    with_pre_roll = segment(samples, pre_roll_ms=320)[1]
    assert without.start_sample - with_pre_roll.start_sample == 10 * WINDOW
    assert np.array_equal(with_pre_roll.audio[10 * WINDOW :][: len(without.audio)], without.audio)


def test_state_is_carried_between_windows():
    """Streaming one window at a time gives the same probabilities as Silero on the whole file."""
    samples = audio.read_all(AUDIO / "dictate_report.wav")[: 40 * WINDOW].astype(np.float32) / 32768
    model = StreamingSilero(silero_path())
    streamed = [model(samples[i : i + WINDOW]) for i in range(0, len(samples), WINDOW)]
    from faster_whisper.vad import SileroVADModel

    whole = SileroVADModel(silero_path())(samples).ravel()
    # (faster-whisper's batch call treats its final window differently: compare the rest)
    assert np.allclose(streamed[:-1], whole[:-1], atol=1e-4)


def test_speech_longer_than_the_limit_is_split_into_parts_that_lose_nothing():
    speech = audio.read_all(AUDIO / "jfk.flac")
    long_speech = np.concatenate([speech] * 4)  # 44 s of speech
    parts = segment(long_speech, end_of_speech_ms=3000, max_utterance_s=15.0, pre_roll_ms=0)
    assert len(parts) >= 3
    assert all(len(p.audio) <= 15.0 * SAMPLE_RATE for p in parts)
    assert [p.part for p in parts] == list(range(len(parts)))
    assert [p.last_part for p in parts] == [False] * (len(parts) - 1) + [True]
    for before, after in zip(parts, parts[1:]):  # contiguous: nothing dropped at a cut
        assert before.start_sample + len(before.audio) == after.start_sample


def test_bursts_shorter_than_min_speech_are_ignored():
    samples = audio.read_all(AUDIO / "dictate_report.wav")
    assert segment(samples, min_speech_ms=60_000) == []


def test_a_killed_vad_sends_again_what_asr_had_not_acknowledged():
    """The wiring of vad's delivery, process and sockets real: utterances go to asr
    reliably, audio is acknowledged to capture by position, and after a SIGKILL the
    new process sends the unacknowledged utterance again, with the same id."""
    speech = audio.read_all(AUDIO / "dictate_report.wav")
    samples = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.int16), speech, np.zeros(SAMPLE_RATE, np.int16)])
    vad = LoneStage("vad", ["capture", "asr"])
    try:
        vad.send("capture", StreamStart(stream="s", live=False), key="start@s", pos=0)
        feed(vad, samples)
        seen = set()

        def speech_and_audio_acknowledged(frame) -> bool:
            seen.add("ack" if frame.topic == "ack" and frame.body.through > 0 else frame.topic)
            return {"speech", "ack"} <= seen

        got = vad.frames(speech_and_audio_acknowledged, seconds=30)
        [utterance] = [f for f in got if f.topic == "speech"]
        assert (utterance.to, utterance.key) == ("asr", utterance.utt)
        audio_acks = [f.body.through for f in got if f.topic == "ack" and f.to == "capture"]
        assert audio_acks and audio_acks == sorted(audio_acks), "audio acknowledged by position, onward"

        vad.pump()
        vad.handed["asr"].clear()
        vad.kill_and_restart()
        again = vad.handed_to("asr", lambda frame: frame.topic == "speech", seconds=30)[-1]
        assert (again.utt, again.payload) == (utterance.utt, utterance.payload)

        # As a consumer does: acknowledge once the producer hears us (its heartbeat says so).
        while not (vad.beat().pid == vad.process.pid and vad.beat().heard.get("asr") == os.getpid()):
            vad.pump()
            vad.downstream.receive(20)
        vad.neighbours["asr"].send(Frame(body=Ack(topic="speech", keys=[again.key]), src="asr", to="vad"))
        deadline = time.monotonic() + 30
        while held_files(vad.run_dir):  # the acknowledgement is written down
            assert time.monotonic() < deadline, "vad never wrote down asr's acknowledgement"
            vad.pump()
            time.sleep(0.05)
        vad.kill_and_restart()
        vad.wait_ready()
        assert held_files(vad.run_dir) == [], "nothing left to send again"
    finally:
        vad.close()


# --- held speech is bounded: downstream stalled, new speech is refused -------------------


def test_speech_refused_while_refusing_is_refused_to_its_end_not_taken_mid_sentence():
    """Refusing lifted in the middle of an utterance: that utterance is not taken from
    its middle on (its second half would be typed as if said alone); the next is."""
    samples = audio.read_all(AUDIO / "session_dictation.wav")
    taken = segment(samples)
    lift_at = (taken[0].onset_sample + taken[0].end_sample) // 2
    model, segmenter, found = StreamingSilero(silero_path()), Segmenter(refusing=True), []
    for offset in range(0, len(samples) - WINDOW + 1, WINDOW):
        segmenter.refusing = offset < lift_at
        window = samples[offset : offset + WINDOW]
        found += segmenter.push(window, model(window.astype(np.float32) / 32768), offset, offset)
    found = [u for u in found + segmenter.flush() if not u.guess]
    assert [u.start_sample for u in found] == [u.start_sample for u in taken[1:]]
    assert segmenter.refused_windows * WINDOW >= (taken[0].end_sample - taken[0].onset_sample) // 2


def test_a_stalled_downstream_makes_vad_refuse_new_speech_and_lose_nothing_it_took(tmp_path):
    """asr never acknowledges: once vad holds max_held_s of speech it takes no more, says
    so, and keeps every utterance it took; each is written once, the state file stays
    small; acknowledged, they are forgotten and speech is taken again."""
    session = audio.read_all(AUDIO / "session_dictation.wav")  # 5 utterances, ~12 s of held audio
    vad = Harness(Vad, tmp_path, "stages.vad.max_held_s=5.0")
    vad.send("capture", StreamStart(stream="s", live=True), key="start@s", pos=0)
    feed(vad, session)
    taken = vad.published("speech", to="asr")
    held = sum(len(frame.payload) for frame in taken) / 2 / SAMPLE_RATE
    assert 2 <= len(taken) < 5 and held >= 5.0 > held - len(taken[-1].payload) / 2 / SAMPLE_RATE
    progress = vad.stage.progress
    assert progress.refusing and progress.refused_ms > 1000 and progress.utterances == len(taken)
    assert vad.stage.state.startswith("refusing speech")
    assert dict(vad.stage.peer.counters)["speech_refusals"] == 1
    assert vad.stage.peer.counters["speech_refused_ms"] == progress.refused_ms

    # Nothing taken is dropped: all still held, each in its own file, written once.
    assert [f.key for f in vad.stage.delivery.pending("asr")] == [f.key for f in taken]
    files = {path: path.stat().st_ino for path in held_files(tmp_path)}  # a rewrite (tmp + rename) is a new inode
    assert len(files) == len(taken)
    feed(vad, session, start=len(session))  # still stalled: more speech, all refused
    assert vad.published("speech", to="asr") == taken
    assert {path: path.stat().st_ino for path in held_files(tmp_path)} == files
    assert (tmp_path / "vad.state.json").stat().st_size < 300, "the stream's position only"

    # A crash while stalled: the held utterances come back from their files, still refusing.
    vad.crash()
    assert [f.key for f in vad.stage.delivery.pending("asr")] == [f.key for f in taken]
    assert vad.stage.progress.refusing

    vad.ack(*taken)
    assert held_files(tmp_path) == [] and not vad.stage.progress.refusing and vad.stage.state == "running"
    vad.clear()
    feed(vad, session, start=2 * len(session))
    assert len(vad.published("speech", to="asr")) >= 2, "speech taken again"


def test_a_real_vad_with_no_asr_acknowledging_refuses_speech_and_says_so():
    """The process and sockets real, asr played by the test and never acknowledging:
    the refusal reaches vad's heartbeat (what `voxkey up` and `voxkey status` read) and
    its log, once; acknowledged, speech is taken again."""
    vad = LoneStage("vad", ["capture", "asr"], "stages.vad.max_held_s=5.0")
    try:
        vad.send("capture", StreamStart(stream="s", live=True), key="start@s", pos=0)
        session = audio.read_all(AUDIO / "session_dictation.wav")
        feed(vad, session)
        vad.send("capture", StreamStop(stream="s", samples=len(session)), key="stop@s", pos=len(session) + 1)

        def progress():
            vad.pump()
            vad.downstream.receive(20)
            return progress_of("vad", vad.beat().progress)

        deadline = time.monotonic() + 30
        while not progress().ended:  # the whole session heard (acknowledgements are taken ahead of audio)
            assert time.monotonic() < deadline, f"vad never heard the session out: {vad.beat()}"
        assert progress().refusing and progress().refused_ms > 1000
        taken = vad.handed_to("asr", lambda frame: len(vad.handed["asr"]) >= 2)
        assert vad.beat().state.startswith("refusing speech")
        vad.neighbours["asr"].send(Frame(body=Ack(topic="speech", keys=[f.key for f in taken]), src="asr", to="vad"))
        while progress().refusing:
            assert time.monotonic() < deadline + 30, "vad never took speech again"
    finally:
        log = vad.close()
    assert log.count("downstream stalled: new speech is refused") == 1 and "speech taken again" in log
