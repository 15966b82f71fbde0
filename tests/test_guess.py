"""Recognition ahead of the end of speech: vad hands out a guess at the first pause as
long as its post-roll, asr recognises it while the rest of the pause is waited for,
and an utterance whose audio is the guess's takes that result. Real Silero, real
Whisper (tiny.en), real stages; in-process where a rule is tested, through every
process where what is typed is compared."""

import os

import numpy as np
from conftest import AUDIO, assert_said, replay, spoken
from harness import Harness
from test_vad import segment

from bench.pipeline import write_wav
from bus.frames import SAMPLE_RATE, Frame, Guess
from stages.asr.stage import Asr
from stages.capture import audio
from stages.vad.segmenting import WINDOW


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.int16)


def sentence() -> np.ndarray:
    return np.concatenate([audio.read_all(AUDIO / "dictate_report.wav"), quiet(1.0)])


def sentence_with_a_pause(pause_s: float) -> np.ndarray:
    """One recording, a pause, then the same recording again: one utterance if the pause
    is shorter than the end-of-speech silence, with a guess at the pause."""
    speech = audio.read_all(AUDIO / "dictate_report.wav")
    return np.concatenate([quiet(pause_s), speech, quiet(pause_s), speech, quiet(1.0)])


def test_a_guess_has_exactly_the_audio_of_the_utterance_when_the_pause_is_its_end():
    found = segment(sentence(), with_guesses=True)
    guesses = [u for u in found if u.guess]
    [utterance] = [u for u in found if not u.guess]
    assert guesses, "a guess at the pause that ended the utterance"
    last = guesses[-1]
    assert np.array_equal(last.audio, utterance.audio)
    assert (last.start_sample, last.part, last.end_sample) == (
        utterance.start_sample,
        utterance.part,
        utterance.end_sample,
    )
    assert [u.guess for u in found][-2:] == [True, False]  # the guess came first


def test_a_guess_at_a_pause_the_speaker_goes_on_after_is_not_the_utterance():
    found = segment(sentence_with_a_pause(0.2), with_guesses=True)  # ~0.35 s with the recording's own: under 600 ms
    [utterance] = [u for u in found if not u.guess]
    guesses = [u for u in found if u.guess]
    assert len(guesses) >= 2
    assert all(g.start_sample == utterance.start_sample for g in guesses)
    assert not np.array_equal(guesses[0].audio, utterance.audio)  # the speaker went on
    assert np.array_equal(guesses[-1].audio, utterance.audio)


def test_no_guess_when_turned_off_and_the_utterances_are_the_same():
    samples = sentence_with_a_pause(0.2)
    with_guesses = [u for u in segment(samples, with_guesses=True) if not u.guess]
    without = segment(samples, with_guesses=True, guess=False)
    assert not any(u.guess for u in without)
    assert [(u.start_sample, len(u.audio)) for u in without] == [(u.start_sample, len(u.audio)) for u in with_guesses]


def test_speech_positions_are_where_speech_was_heard():
    samples = sentence_with_a_pause(1.0)  # a pause long enough to end an utterance
    first, second = [u for u in segment(samples) if not u.guess]
    speech_s = len(audio.read_all(AUDIO / "dictate_report.wav")) / SAMPLE_RATE
    assert first.start_sample < first.onset_sample < first.end_sample < first.start_sample + len(first.audio)
    assert first.end_sample < second.onset_sample
    # the second recording starts 1 s after the first ends, give or take a window or two of onset
    assert abs(second.onset_sample - first.onset_sample - (speech_s + 1.0) * SAMPLE_RATE) < 8 * WINDOW


def payload(utterance) -> bytes:
    return utterance.audio.astype("<i2").tobytes()


def guess_frame(utterance, utt: str) -> Frame:
    """A guess as vad publishes it: to whoever listens, unreliably."""
    return Frame(
        body=Guess("s", utterance.start_sample, utterance.part), src="vad", utt=utt, payload=payload(utterance)
    )


def speech_frame(utterance, utt: str) -> Frame:
    """An utterance as vad hands it over: reliably, to this asr process."""
    return Frame(
        body=utterance.speech("s"),
        src="vad",
        utt=utt,
        payload=payload(utterance),
        to="asr",
        to_pid=os.getpid(),
        key=utt,
    )


def recognise(asr: Harness, *frames: Frame) -> list[Frame]:
    """All the frames arrive, then asr works through them: what it published."""
    for frame in frames:
        asr.stage.arrive(frame)
    asr.run()
    return asr.published("transcript")


def test_asr_types_from_a_guess_only_what_the_utterance_itself_gives(tmp_path):
    found = segment(sentence_with_a_pause(0.2), with_guesses=True)
    [utterance] = [u for u in found if not u.guess]
    guesses = [u for u in found if u.guess]
    [expected] = recognise(Harness(Asr, tmp_path / "plain"), speech_frame(utterance, "u"))

    asr = Harness(Asr, tmp_path / "guessing")
    recognise(asr, guess_frame(guesses[0], "u"))  # at the pause the speaker went on after
    recognise(asr, guess_frame(guesses[-1], "u"))
    [transcript] = recognise(asr, speech_frame(utterance, "u"))
    assert transcript.body == expected.body
    assert_said(transcript.body.text, " ".join([spoken("dictate_report.wav")] * 2))
    counters = asr.stage.peer.counters
    assert (counters["guesses_used"], counters["guesses_wasted"]) == (1, 1)
    assert transcript.marks["recognised"] < transcript.marks["asr"]  # recognised before the utterance came


def test_a_guess_that_is_not_the_utterance_is_never_typed(tmp_path):
    found = segment(sentence_with_a_pause(0.2), with_guesses=True)
    [utterance] = [u for u in found if not u.guess]
    early = [u for u in found if u.guess][0]
    asr = Harness(Asr, tmp_path)
    recognise(asr, guess_frame(early, "u"))
    [transcript] = recognise(asr, speech_frame(utterance, "u"))
    assert_said(transcript.body.text, " ".join([spoken("dictate_report.wav")] * 2))
    assert (asr.stage.peer.counters["guesses_used"], asr.stage.peer.counters["guesses_wasted"]) == (0, 1)


def test_an_utterance_owed_a_result_is_not_kept_waiting_by_a_guess(tmp_path):
    found = segment(sentence(), with_guesses=True)
    [utterance] = [u for u in found if not u.guess]
    asr = Harness(Asr, tmp_path)
    transcripts = recognise(asr, guess_frame([u for u in found if u.guess][-1], "u"), speech_frame(utterance, "u"))
    assert asr.stage.peer.counters["guesses_skipped"] == 1
    assert len(transcripts) == 1
    assert_said(transcripts[0].body.text, spoken("dictate_report.wav"))


def test_replay_types_the_same_with_and_without_guesses(tmp_path):
    """Through every process: guesses change when words are recognised, never which."""
    recording = tmp_path / "pauses.wav"
    write_wav(recording, sentence_with_a_pause(0.2))
    guessed = replay(recording)
    plain = replay(recording, "--set", "stages.vad.guess=false")
    assert guessed == plain
    assert_said(guessed, " ".join([spoken("dictate_report.wav")] * 2))
