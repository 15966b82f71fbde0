"""The endpointing bench's streams and arithmetic (`voxkey bench --endpointing`), on the
real fixtures with real Silero. Its replays at real time take minutes: they are the
bench's, not the suite's; the trace columns they rely on are checked in test_replay."""

import random

import numpy as np
import pytest
from conftest import AUDIO

from bench import endpointing
from bus import config as configuration
from bus.frames import SAMPLE_RATE
from stages.capture import audio

SEED = 1234  # fixed, so a failure can be replayed


@pytest.fixture(scope="module")
def streams():
    print(f"seed {SEED}")
    return (
        endpointing.build_stream(list(endpointing.SENTENCES), AUDIO, None),
        endpointing.build_stream(list(endpointing.SENTENCES), AUDIO, random.Random(SEED)),
    )


def test_each_sentence_is_placed_whole_where_the_stream_says(streams):
    (samples, placed), _ = streams
    assert [p.name for p in placed] == list(endpointing.SENTENCES)
    for sentence in placed:
        alone = audio.read_all(AUDIO / sentence.name)
        first, last = endpointing.speech_bounds(endpointing.speech_probabilities(alone))
        speech = alone[first * 512 : (last + 1) * 512]
        assert np.array_equal(samples[sentence.start : sentence.end], speech)
    gaps = [after.start - before.end for before, after in zip(placed, placed[1:])]
    assert gaps == [int(endpointing.BETWEEN_S * SAMPLE_RATE)] * len(gaps)


def test_pauses_go_inside_sentences_between_words_and_are_seeded(streams):
    (plain, placed), (paused, placed_with_pauses) = streams
    added = [(b.end - b.start) - (a.end - a.start) for a, b in zip(placed, placed_with_pauses)]
    low, high = (int(s * SAMPLE_RATE) for s in endpointing.INNER_PAUSE_S)
    assert sum(added) >= low * len(placed)  # most sentences get at least one pause
    assert all(0 <= extra <= endpointing.INNER_PAUSES * high for extra in added)
    again, _ = endpointing.build_stream(list(endpointing.SENTENCES), AUDIO, random.Random(SEED))
    assert np.array_equal(again, paused)


def test_shorter_end_of_speech_silences_cut_more_sentences(streams):
    _, (samples, placed) = streams
    vad = configuration.load()["stages"]["vad"]
    cuts = [endpointing.cut_sentences(samples, placed, vad, ms) for ms in endpointing.END_OF_SPEECH_RULES_MS]
    assert cuts == sorted(cuts, reverse=True)
    assert cuts[0] > cuts[-1]  # the pauses put in are where endpointing is hard


def test_latency_is_counted_from_where_speech_ends_in_the_recording():
    placed = [
        endpointing.Placed("a.wav", "Hello there.", 16_000, 48_000),
        endpointing.Placed("b.wav", "Good day to you.", 80_000, 120_000),
    ]
    started = 10_000_000_000
    second = 1_000_000_000

    def row(end_sample, first_key_s, last_key_s, text, backspaces=0):
        return {
            "speech_end_sample": end_sample,
            "stream_started_ns": started,
            "first_key_ns": started + int(first_key_s * second),
            "last_key_ns": started + int(last_key_s * second),
            "text": text,
            "backspaces": backspaces,
        }

    rows = [
        row(47_500, 3.6, 3.7, "Hello there."),
        row(95_000, 6.5, 6.6, "Good day"),
        row(119_800, 8.0, 8.2, " to you.", 1),
    ]
    first, second_sentence = endpointing.sentence_rows(rows, placed)
    assert (first["utterances"], first["end_to_first_key_ms"], first["end_to_last_key_ms"]) == (1, 600.0, 700.0)
    assert (
        second_sentence["utterances"],
        second_sentence["end_to_first_key_ms"],
        second_sentence["end_to_last_key_ms"],
    ) == (2, 500.0, 700.0)
    summary = endpointing.summarise(
        [first, second_sentence], [400.0, 500.0], "Hello there. Good day to you.", "Hello there. Good day to you."
    )
    assert summary["end_to_last_key_ms"] == 700.0 and summary["raw_recognition_ms"] == 450.0
    assert summary["last_key_over_raw_ms"] == 250.0
    assert (summary["word_error_rate"], summary["cut_sentences"], summary["untyped_sentences"]) == (0.0, 1, 0)
    assert summary["corrections_per_typed_char"] == round(1 / len("Hello there. Good day to you."), 4)


def test_the_sentence_end_rule_sees_every_sentence_end_and_the_pauses_inside(streams):
    """Whisper on the guess at each pause of 300 ms or more: every sentence's end is one,
    and the pauses put inside sentences are the others."""
    _, (samples, placed) = streams
    counts = endpointing.sentence_end_rule(configuration.load(), samples, placed)
    assert counts["at_sentence_end_with_full_stop"] + counts["at_sentence_end_without"] == len(placed)
    assert counts["inside_sentence_with_full_stop"] + counts["inside_sentence_without"] >= 1
    assert endpointing.ends_a_sentence("On Monday morning.") and not endpointing.ends_a_sentence("and then")


def test_rule_costs_count_cut_sentences_on_many_pause_streams(monkeypatch):
    monkeypatch.setattr(endpointing, "RULE_SEEDS", 2)
    costs = endpointing.rule_costs(configuration.load(), AUDIO, random.Random(SEED))
    paused = costs["pauses (2 streams)"]
    assert costs["sentences placed"] == {
        "sentences": len(endpointing.SENTENCES),
        "pauses (2 streams)": 2 * len(endpointing.SENTENCES),
    }
    assert list(paused.values()) == sorted(paused.values(), reverse=True)
    assert all(value <= 2 * len(endpointing.SENTENCES) for value in paused.values())


def test_overall_medians_span_both_streams_and_compare_with_the_first_arm():
    def arm(lasts, raws):
        return {"s": {"sentences": [{"end_to_last_key_ms": last} for last in lasts], "raw_recognition_ms": raws}}

    rows = endpointing.overall(
        {"before": arm([1000, 1100, 1200], [400, 400, 400]), "after": arm([500, 550, 600], [300, 300, 300])}
    )
    assert rows["before"] == {
        "end_to_last_key_ms": 1100,
        "raw_recognition_ms": 400,
        "last_key_over_raw_ms": 700,
        "ratio_to_first_arm": 1.0,
    }
    assert rows["after"]["ratio_to_first_arm"] == 0.5 and rows["after"]["last_key_over_raw_ms"] == 250
