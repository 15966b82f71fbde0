"""Silero v6 streaming and the segmenter, on real recordings with the real model."""

import json
import os
import time

import numpy as np
from conftest import AUDIO

from bus.frames import SAMPLE_RATE
from stages.capture import audio
from stages.vad import WINDOW, Segmenter, StreamingSilero, silero_path


def segment(samples: np.ndarray, with_guesses: bool = False, **settings) -> list:
    """The utterances vad cuts, and with `with_guesses` the guesses it hands out, in order."""
    model, segmenter, found = StreamingSilero(silero_path()), Segmenter(**settings), []
    for offset in range(0, len(samples) - WINDOW + 1, WINDOW):
        window = samples[offset : offset + WINDOW]
        found += segmenter.push(window, model(window.astype(np.float32) / 32768), offset, offset)
    return [u for u in found + segmenter.flush() if with_guesses or not u.guess]


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
    from conftest import LoneStage

    from bus.frames import Ack, AudioChunk, Frame, StreamStart

    speech = audio.read_all(AUDIO / "dictate_report.wav")
    samples = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.int16), speech, np.zeros(SAMPLE_RATE, np.int16)])
    vad = LoneStage("vad", ["capture", "asr"])
    try:
        vad.send("capture", StreamStart(stream="s", live=False), key="start@s", pos=0)
        for offset in range(0, len(samples) - WINDOW + 1, WINDOW):
            vad.send(
                "capture",
                AudioChunk(stream="s", offset=offset),
                payload=samples[offset : offset + WINDOW].tobytes(),
                key=str(offset),
                pos=offset + WINDOW,
            )
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
        state = vad.run_dir / "vad.state.json"
        deadline = time.monotonic() + 30
        while json.loads(state.read_text())["outbox"]:  # the acknowledgement is written down
            assert time.monotonic() < deadline, "vad never wrote down asr's acknowledgement"
            vad.pump()
            time.sleep(0.05)
        vad.kill_and_restart()
        vad.wait_ready()
        assert json.loads(state.read_text())["outbox"] == [], "nothing left to send again"
    finally:
        vad.close()
