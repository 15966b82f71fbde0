"""The utterance-length encoding (stages/asr/encoding.py): how many frames, the token
budget and the checks that send a short recognition back to the padded window, in
process; then with the embedded tiny.en, that it recognises as well as the window and
falls back when it should. Whisper's exact words differ between CPUs' kernels: word
error rates are bounded, never words asserted."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import AUDIO

from bench import modeset, raw
from bench.endpointing import spoken_text
from bench.workload import word_error_rate
from bus import config as configuration
from bus.frames import SAMPLE_RATE
from bus.text import words
from stages.asr import encoding
from stages.asr.encoding import Encoding, repeated_run, suspicious
from stages.asr.guards import first_word_swallowed, voice_onset
from stages.asr.stage import Guards, judge, pauses_after, transcribe
from stages.capture import audio

SHORT = Encoding(mode="utterance", tail_ms=1000, min_frames=1000)


def segment(text: str = "Please send the report.", **evidence) -> SimpleNamespace:
    spoken = dict(no_speech_prob=0.1, avg_logprob=-0.3, compression_ratio=1.1, words=None)
    return SimpleNamespace(text=text, **{**spoken, **evidence})


# --- in process -------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, frames",
    [
        (0.5, 1000),  # at least min_frames
        (9.0, 1000),  # 900 own + 100 tail
        (9.01, 1002),  # 901 + 100, made even
        (20.0, 2100),
        (29.5, 3000),  # never more than the window
    ],
)
def test_the_encoder_sees_the_audio_its_tail_and_at_least_the_minimum(seconds, frames):
    assert SHORT.frames(int(seconds * SAMPLE_RATE)) == frames


def test_long_utterances_and_the_window_setting_take_the_padded_window():
    assert SHORT.short(5 * SAMPLE_RATE)
    assert not SHORT.short(29 * SAMPLE_RATE)  # 2900 + 100 frames: the window anyway
    assert not dataclasses.replace(SHORT, max_s=10.0).short(12 * SAMPLE_RATE)
    assert not dataclasses.replace(SHORT, mode="window").short(SAMPLE_RATE)


def test_the_token_budget_grows_with_the_audio():
    one, four = SHORT.budget(SAMPLE_RATE), SHORT.budget(4 * SAMPLE_RATE)
    assert one < four < encoding.WINDOW_FRAMES
    assert four - one == 3 * SHORT.tokens_per_s
    assert four < 448  # a loop is cut off long before Whisper's own limit


def test_the_settings_are_read_and_checked():
    settings = configuration.load(overrides=["stages.asr.encode=utterance"])["stages"]["asr"]
    read = Encoding.of(settings)
    assert read.mode == "utterance" and read.min_frames == int(settings["encode_min_frames"])
    with pytest.raises(ValueError, match="encode must be one of"):
        Encoding.of({**settings, "encode": "short"})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("switch to clarify mode, switch to clarify mode, switch", True),
        ("and so my fellow Americans. And so my fellow Americans.", True),
        ("new line, new line, new line", True),  # a short run three times
        ("thanks thanks", True),  # all of it twice
        ("yes yes, I said", False),
        ("thank you thank you, that helps", False),  # two words twice: people say it
        ("ask not what your country can do for you, ask what you can do for your country", False),
    ],
)
def test_a_run_of_words_said_twice_in_a_row_is_a_loop(text, expected):
    assert repeated_run(words(text)) is expected


@pytest.mark.parametrize(
    "segments, generated, reason",
    [
        ([segment()], 6, ""),
        ([], 0, "empty"),
        ([segment()], 20, "budget"),  # the decoder did not stop by itself
        ([segment(no_speech_prob=0.7)], 6, "not_speech"),  # a drop is only ever the window's verdict
        ([segment("new line, new line, new line")], 8, "repeats"),
        ([segment(compression_ratio=3.0)], 6, "repeats"),
        ([segment("a b c d e f g h i j k l m n o p q r")], 18, "dense"),  # 18 words in one second
        ([segment(avg_logprob=-1.2)], 6, "unsure"),
    ],
)
def test_a_short_recognition_that_looks_wrong_goes_back_to_the_window(segments, generated, reason):
    assert suspicious(segments, generated, budget=20, samples=SAMPLE_RATE, encoding=SHORT) == reason


def timed(*spans) -> list[SimpleNamespace]:
    """faster-whisper Words from (word, start, end, probability)."""
    return [SimpleNamespace(word=w, start=start, end=end, probability=p) for w, start, end, p in spans]


# The session of tests/test_said_is_typed.py, as tiny.en timed it (voice from 0.29 s).
LOST = timed(
    (" with", 0.0, 0.74, 0.14),
    (" the", 0.74, 1.02, 0.67),
    (" team", 1.02, 1.24, 0.99),
    (" tomorrow", 1.24, 1.56, 0.97),
    (" about", 1.56, 1.92, 0.97),
    (" the", 1.92, 2.12, 0.99),
    (" launch.", 2.12, 2.42, 0.97),
)
HEARD = timed(
    (" Chat", 0.0, 0.6, 0.67),
    (" log", 0.6, 0.88, 0.33),
    (" show", 0.88, 1.08, 0.76),
    (" three", 1.08, 1.42, 0.66),
    (" errors", 1.42, 1.64, 0.88),
    (" in", 1.64, 1.82, 0.99),
    (" the", 1.82, 2.02, 1.0),
    (" build.", 2.02, 2.24, 0.81),
)


@pytest.mark.parametrize(
    "words_timed, onset_s, lost",
    [
        (LOST, 0.29, True),  # "with" over "Converse with": 0.45 s of voice for 4 letters at 15.5 a second
        (HEARD, 0.29, False),
        (
            timed((" Congress", 0.0, 0.68, 0.11), *[(w.word, w.start, w.end, w.probability) for w in LOST[1:]]),
            0.29,
            False,
        ),
        (timed((" with", 0.0, 0.74, 0.94), *[(w.word, w.start, w.end, w.probability) for w in LOST[1:]]), 0.29, False),
        (timed((" So", 0.0, 0.56, 0.8), (" basically", 0.56, 1.1, 0.9), (" we", 1.1, 1.3, 0.9)), 0.29, False),
        (timed((" Dick", 0.0, 0.56, 0.1), (" Hate,", 0.56, 0.9, 0.2), (" remember", 1.1, 1.5, 0.9)), 0.29, False),
        (timed((" Thank", 0.0, 0.54, 0.1)), 0.29, False),  # one word: no pace to hold it against
        ([], 0.29, False),
    ],
)
def test_a_first_word_stretched_over_the_voice_and_unsure_swallowed_one(words_timed, onset_s, lost):
    assert first_word_swallowed(words_timed, onset_s) is lost


def test_the_voice_starts_halfway_from_the_floor_to_the_peak():
    rng = np.random.default_rng(3)
    quiet = rng.normal(-0.7, 0.02, 29)  # the pre-roll: silence, or a steady noise floor
    voice = rng.normal(0.2, 0.1, 200)
    assert voice_onset(np.concatenate([quiet, voice])) == 29
    assert voice_onset(np.concatenate([quiet + 0.5, voice])) == 29  # noise raises the floor, not the onset
    assert voice_onset(voice) == 0 and voice_onset(np.array([])) == 0


def test_a_swallowed_first_word_goes_back_to_the_window_when_the_onset_is_known():
    lost = [segment("with the team tomorrow about the launch.", words=LOST)]
    assert suspicious(lost, 12, budget=40, samples=2 * SAMPLE_RATE, encoding=SHORT, onset_s=0.29) == "first_word"
    assert suspicious(lost, 12, budget=40, samples=2 * SAMPLE_RATE, encoding=SHORT) == ""  # onset not known


# --- with tiny.en -------------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper():
    settings = configuration.load(overrides=["stages.asr.encode=utterance"])["stages"]["asr"]
    engine = raw.Whisper({**settings, "encode": "window"})
    return SimpleNamespace(model=engine.model, settings=settings, guards=Guards.of(settings))


def recognised(whisper, name: str, **overrides) -> tuple[str, str, list]:
    samples = audio.read_all(AUDIO / name).astype(np.float32) / 32768.0
    segments, fell_back = transcribe(whisper.model, {**whisper.settings, **overrides}, samples, timed=True)
    text, _dropped = judge(segments, whisper.guards, len(samples) * 1000 // SAMPLE_RATE)
    return text, fell_back, segments


@pytest.mark.parametrize("name, bound", [("jfk.flac", 0.15), ("chat_capital.wav", 0.35)])
def test_the_utterance_encoding_types_speech_as_well_as_the_window(whisper, name, bound):
    expected = spoken_text(AUDIO, name)
    text, fell_back, segments = recognised(whisper, name)
    window, _, _ = recognised(whisper, name, encode="window")
    assert fell_back == ""  # the short recognition was trusted
    assert word_error_rate(words(expected), words(text)) <= bound
    assert word_error_rate(words(expected), words(text)) <= word_error_rate(words(expected), words(window)) + 0.1
    timed = segments[0].words  # word timings for the pauses after the first words
    assert len(timed) == len(text.split())
    assert timed[-1].end <= len(audio.read_all(AUDIO / name)) / SAMPLE_RATE + 0.5
    assert len(pauses_after(timed)) == min(3, len(timed) - 1)


def test_a_prefix_begins_the_short_recognition(whisper):
    samples = audio.read_all(AUDIO / "dictate_meeting.wav").astype(np.float32) / 32768.0
    segments, fell_back = transcribe(whisper.model, whisper.settings, samples, prefix="The meeting has")
    assert fell_back == ""
    assert words(segments[0].text)[:3] == ["the", "meeting", "has"]


def test_a_used_up_budget_falls_back_to_the_window(whisper):
    text, fell_back, _ = recognised(whisper, "dictate_meeting.wav", encode_base_tokens=0, encode_tokens_per_s=0.5)
    window, _, _ = recognised(whisper, "dictate_meeting.wav", encode="window")
    assert fell_back == "budget"
    assert text == window


def test_too_few_frames_never_type_a_loop(whisper):
    """0.7 s of "New line." in 100 frames: Whisper may repeat it to the token limit;
    whatever it does, what comes back is not a loop."""
    text, fell_back, _ = recognised(whisper, "cmd_new_line.wav", encode_min_frames=100, encode_tail_ms=200)
    assert len(words(text)) <= 4, (text, fell_back)


def test_non_speech_is_dropped_on_the_windows_evidence(whisper):
    text, fell_back, _ = recognised(whisper, "noise_only.wav")
    assert text == ""
    assert fell_back  # the short encoding never drops on its own


def test_a_first_word_the_short_encoding_swallows_is_heard_in_the_window(whisper):
    """ "Converse with the team tomorrow about the launch." as vad cuts it from the session
    of tests/test_said_is_typed.py: the short encoding wrote "with the team...", "with"
    timed over both words; the guard sends it back to the window."""
    said = "Converse with the team tomorrow about the launch."
    manifest = json.loads((AUDIO / "modes" / "MANIFEST.json").read_text())
    [entry] = [c for c in manifest["clips"] if c["text"] == said and c["speed"] == 1.0]
    gap = np.zeros(int(1.2 * SAMPLE_RATE), np.int16)  # the session's pause between sentences
    vad = configuration.load()["stages"]["vad"]
    [utterance] = raw.utterances(np.concatenate([gap, modeset.clip(AUDIO / "modes", entry), gap]), vad)
    samples = utterance.audio.astype(np.float32) / 32768.0
    segments, fell_back = transcribe(whisper.model, whisper.settings, samples, timed=True)
    text, _dropped = judge(segments, whisper.guards, utterance.voiced_ms)
    assert words(text)[:1] != words(said)[1:2], (text, fell_back)  # it begins with the first word said
    assert word_error_rate(words(said), words(text)) <= 0.25, text
