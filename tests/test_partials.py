"""Stable partials: the words of long speech typed before the speaker stops, never erased.
vad's segmenter and asr's agreement rule as functions; the router in-process (frames in,
keystrokes out); and through every process with real Whisper."""

import json

import numpy as np
from conftest import AUDIO, replay, spoken, words
from harness import Harness
from test_vad import segment

from bus.frames import SAMPLE_RATE, Transcript
from stages.asr.stage import Asr, Hypotheses
from stages.capture import audio
from stages.router.meaning import plainly_dictated
from stages.router.stage import Router
from stages.vad.segmenting import WINDOW

SENTENCE = "Please send the quarterly report to Maria before Friday afternoon."


def test_only_words_two_recognitions_agree_on_are_committed_and_never_taken_back():
    spoken_so_far = Hypotheses("u", 0)
    assert spoken_so_far.agree("Please send the quart".split()) == []  # nothing to agree with yet
    assert spoken_so_far.agree("Please send the quarterly report".split()) == ["Please", "send", "the"]
    # the last word is never committed: the audio may end inside it
    assert spoken_so_far.agree("Please send the quarterly report to".split()) == ["quarterly", "report"]
    # words compare as spoken ("report," is "report"), and what was sent keeps its spelling
    assert spoken_so_far.agree("Please send the quarterly report, to Maria".split()) == ["to"]
    assert spoken_so_far.committed == "Please send the quarterly report to".split()
    # a recognition that disagrees earlier cannot shrink what was sent
    assert spoken_so_far.agree("Please send a quarterly".split()) == []
    assert spoken_so_far.committed == "Please send the quarterly report to".split()


def test_vad_hands_out_the_audio_so_far_while_speech_goes_on():
    speech = audio.read_all(AUDIO / "jfk.flac")
    found = segment(speech, with_guesses=True, partial_every_ms=1000, partial_after_s=2.0, end_of_speech_ms=1500)
    ongoing = [u for u in found if u.ongoing]
    [utterance] = [u for u in found if not u.guess]
    assert len(ongoing) >= 4
    assert all(len(u.audio) >= 2.0 * SAMPLE_RATE for u in ongoing)
    lengths = [len(u.audio) for u in ongoing]
    assert lengths == sorted(lengths) and all(
        b - a >= 1000 * SAMPLE_RATE // 1000 - WINDOW for a, b in zip(lengths, lengths[1:])
    )
    assert all(np.array_equal(u.audio, utterance.audio[: len(u.audio)]) for u in ongoing)  # a prefix of the utterance
    assert not any(u.ongoing for u in segment(speech, with_guesses=True, end_of_speech_ms=1500))  # off by default


def test_words_typed_ahead_are_plain_dictation_whatever_follows():
    mode_words = {}  # mode names are recognised by sound ("Chet." sounds like "Chat.")
    stop_words = {"stop", "cancel"}
    assert plainly_dictated("Please send the", mode_words, stop_words)
    for not_yet in (
        "Please send",
        "Chat, what is",
        "Chet. What is",
        "Switch to chat",
        "New line and",
        "Scratch that and",
        "Please switch to",
        "Conders, what is",
        "Yet another meeting",
        "Con verse what",
    ):
        assert not plainly_dictated(not_yet, mode_words, stop_words), not_yet


def partial(router: Harness, text: str, utt: str = "u1") -> None:
    router.send("asr", Transcript(text, partial=True), utt=utt, key=f"{utt}~{len(text.split())}", reliable=True)
    for keystrokes in router.published("keystrokes"):
        router.ack(keystrokes)


def final(router: Harness, text: str, utt: str = "u1") -> None:
    router.send("asr", Transcript(text), utt=utt, reliable=True)
    for keystrokes in router.published("keystrokes"):
        router.ack(keystrokes)


def document(router: Harness) -> str:
    typed = ""
    for frame in router.published("keystrokes"):
        assert frame.body.backspaces == 0
        assert frame.body.offset == len(typed) - len(typed_before(router, frame)), "pieces follow one another"
        typed += frame.body.text
    return typed


def typed_before(router: Harness, piece) -> str:
    """What the document held before this piece's utterance began."""
    before = ""
    for frame in router.published("keystrokes"):
        if frame.utt == piece.utt:
            return before
        before += frame.body.text
    return before


def test_the_router_types_partials_ahead_and_the_rest_at_the_end(tmp_path):
    router = Harness(Router, tmp_path)
    final(router, "First of all.", utt="u0")
    partial(router, "Please send the", utt="u1")
    partial(router, "Please send the quarterly report to", utt="u1")
    partial(router, "Please send the quarterly report to", utt="u1")  # comes again: typed once
    final(router, SENTENCE, utt="u1")
    pieces = [(f.body.text, f.body.offset, f.body.final) for f in router.published("keystrokes") if f.utt == "u1"]
    assert pieces == [
        (" Please send the", 0, False),
        (" quarterly report to", 16, False),
        (" Maria before Friday afternoon.", 36, True),
    ]
    assert document(router) == "First of all. " + SENTENCE
    final(router, "Scratch that.", utt="u2")  # erases the utterance whole, partials included
    assert router.published("keystrokes")[-1].body.backspaces == len(" " + SENTENCE)


def test_nothing_is_typed_ahead_outside_dictation_or_before_the_mode_is_known(tmp_path):
    router = Harness(Router, tmp_path)
    partial(router, "Chat. What is the capital")
    assert router.published("keystrokes") == []
    final(router, "Switch to chat mode.", utt="u2")
    partial(router, "Tell me a story about", utt="u3")
    assert [f.body.text for f in router.published("keystrokes")] == [""]  # only the switch's empty final


def test_a_final_that_does_not_begin_with_the_words_typed_ahead_erases_nothing(tmp_path):
    """After an asr restart the final is recognised without the words sent before: the
    words beyond as many as were typed are typed, and nothing is taken back."""
    router = Harness(Router, tmp_path)
    partial(router, "Please send the quarterly")
    final(router, "Please, send a quarterly report to Maria.")
    assert document(router) == "Please send the quarterly report to Maria."


def test_long_speech_is_typed_before_it_ends_and_the_same_words_as_without_partials(tmp_path):
    """Through every process at real time: the first words are on screen before the
    speaker stops, nothing is ever erased, and the words are those of a plain run."""
    trace = tmp_path / "trace.jsonl"
    settings = ["--set", "stages.vad.end_of_speech_ms=1500"]  # jfk.flac as one utterance
    typed = replay("jfk.flac", *settings, "--set", "stages.vad.partial_every_ms=1000", "--trace", trace, "--realtime")
    [row] = [json.loads(line) for line in trace.read_text().splitlines()]
    assert row["backspaces"] == 0
    assert row["first_key_ns"] < row["speech_end_ns"], "typed ahead of the end of speech"
    plain = replay("jfk.flac", *settings)
    expected = words(spoken("jfk.flac"))
    from bench import workload

    assert workload.word_error_rate(expected, words(typed)) <= workload.word_error_rate(expected, words(plain)) + 0.1, (
        typed,
        plain,
    )


def test_asr_sends_agreed_words_and_the_utterance_begins_with_them_guess_or_not(tmp_path):
    """In-process asr with real Whisper: partials from the audio so far, then the pause's
    guess, then the utterance: its result is the guess's (made with the same words sent
    ahead), and it begins with every word sent."""
    from test_guess import guess_frame, recognise, speech_frame

    speech = np.concatenate([audio.read_all(AUDIO / "jfk.flac"), np.zeros(SAMPLE_RATE, np.int16)])
    found = segment(speech, with_guesses=True, partial_every_ms=1000, end_of_speech_ms=1500)
    [utterance] = [u for u in found if not u.guess]
    asr = Harness(Asr, tmp_path)
    for guess in [u for u in found if u.guess]:
        frame = guess_frame(guess, "u")
        frame.body.ongoing = guess.ongoing
        recognise(asr, frame)
    partials = [f.body.text for f in asr.published("transcript")]
    assert partials and all(later.startswith(earlier) for earlier, later in zip(partials, partials[1:]))
    [final] = recognise(asr, speech_frame(utterance, "u"))[len(partials) :]
    assert final.body.text.startswith(partials[-1])
    assert asr.stage.peer.counters["guesses_used"] == 1
    assert words(final.body.text)[:4] == ["and", "so", "my", "fellow"]
