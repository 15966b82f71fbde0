"""Mode names recognised by how they sound: on text, then on held-out speech through
the real tiny.en (tests/audio/modes, made by bench/modeset.py)."""

import json

import pytest
from conftest import AUDIO
from harness import Harness

from bus.frames import Transcript
from stages.router.meaning import Decision, decide, plainly_dictated
from stages.router.modewords import (
    MIN_PAUSE_MS,
    distance,
    may_name_a_mode,
    mode_prefix,
    named_alone,
    sound_key,
    sounds_like,
)
from stages.router.stage import Router


def test_sound_keys_hear_spellings_alike():
    assert sound_key("chat") == sound_key("chet") == sound_key("jet")
    assert sound_key("converse") == sound_key("Con verse") == "kanvars"
    assert sound_key("Clarify") == sound_key("klarifie")
    assert distance(sound_key("conders"), sound_key("converse")) < distance(
        sound_key("conversely"), sound_key("converse")
    )


@pytest.mark.parametrize(
    "heard, mode, rest",
    [
        (
            " Conders, what is 17 times 23?",
            "converse",
            "What is 17 times 23?",
        ),  # an unseen recording: typed as dictation before
        (" Congress. What is 12% of 200?", "converse", "What is 12% of 200?"),
        (" Con verse, why is the sky blue?", "converse", "Why is the sky blue?"),  # two words heard for one name
        (" yet, what is the capital of France?", "chat", "What is the capital of France?"),
        (" Chet. How do I boil an egg?", "chat", "How do I boil an egg?"),
        (" Jet. Who wrote Pride and Prejudice?", "chat", "Who wrote Pride and Prejudice?"),
        (" Clarifying. So the meeting is moved to Friday.", "clarify", "So the meeting is moved to Friday."),
        (" Clarified, um, so the meeting is moved.", "clarify", "Um, so the meeting is moved."),
        (" Dictate. Please send the report.", "dictate", "Please send the report."),
    ],
)
def test_a_name_heard_as_something_like_it_picks_the_mode(heard, mode, rest):
    decision = decide(heard, "dictate", {}, {"stop"})
    assert (decision.mode, decision.text) == (mode, rest)


@pytest.mark.parametrize(
    "said",
    [
        "Yet another meeting is planned.",
        "Chatting with Sam tomorrow.",
        "Conversely, the budget went down.",
        "Clarity matters.",
        "Jet lag is bad.",
        "Congress passed the bill.",
        "Chad said he would call later.",
        "Converts the file to plain text.",
        "Dictation is faster than typing.",
        "Conversation starts at noon.",
        "Yeah, that sounds good to me.",
        "Yes, I will be there.",
        "Concerts, plays and films are on the list.",
        "Chatter, noise and music filled the hall.",
        "That, and more.",
        "Dictator, the film, is long.",
    ],
)
def test_words_that_only_begin_like_a_name_are_dictated_as_said(said):
    assert decide(f" {said}", "dictate", {}, {"stop"}) == decide(said, "dictate", {}, set())
    assert decide(said, "dictate", {}, set()).mode == "dictate"
    assert decide(said, "dictate", {}, set()).text == said


@pytest.mark.parametrize(
    "said",
    [
        "Chat logs show three errors in the build.",
        "Converse with the team tomorrow.",
        "Dictate the letter to Anna.",
        "Clarify the scope before we start.",
        "Chat. Logs show three errors.",  # Whisper wrote a period the audio does not have
    ],
)
def test_a_name_said_straight_on_is_an_ordinary_word(said):
    """The word timings say no pause follows the name: the sentence is typed whole."""
    for pauses in ([0, 10, 0], [64, 0, 0], [MIN_PAUSE_MS - 1]):
        assert decide(said, "dictate", {}, set(), pauses_ms=pauses) == Decision("dictate", said)


def test_a_name_that_stands_apart_picks_the_mode_pause_written_or_not():
    assert decide("Chat what is the time", "dictate", {}, set(), pauses_ms=[300, 0]) == Decision(
        "chat", "What is the time"
    )
    assert decide("Chat what is the time", "dictate", {}, set()).mode == "dictate"  # no timings, no mark: no pause
    assert decide("Chat, what is the time", "dictate", {}, set()).mode == "chat"  # no timings: the mark is the pause
    assert mode_prefix("Con verse, why is the sky blue?", {}, pauses_ms=[0, 250])[0] == "converse"
    assert mode_prefix("Con verse, why is the sky blue?", {}, pauses_ms=[0, 40])[0] == ""
    # A sound-alike needs Whisper's mark as well as the pause: "Yet another" never switches.
    assert mode_prefix("Yet another meeting is planned.", {}, pauses_ms=[400])[0] == ""
    assert mode_prefix("Yet, we still need a plan.", {}, pauses_ms=[40])[0] == ""


def test_a_near_sound_needs_a_pause_after_it():
    assert mode_prefix("Conders what is 17 times 23?", {}) == ("", "Conders what is 17 times 23?")
    assert mode_prefix("Conders, what is 17 times 23?", {})[0] == "converse"
    assert sounds_like("conversely") == sounds_like("chatting") == sounds_like("yeah") == ""


def test_a_users_own_words_count_like_the_names():
    aliases = {"converse": ["think"]}
    assert mode_prefix("Think, what is 17 times 23?", aliases) == ("converse", "what is 17 times 23?")
    assert mode_prefix("Think what is 17 times 23?", aliases, pauses_ms=[300]) == ("converse", "what is 17 times 23?")
    assert mode_prefix("Think what is 17 times 23?", aliases, pauses_ms=[30])[0] == ""  # said straight on
    assert decide("Switch to think mode.", "dictate", aliases, set()).sticky == "converse"
    assert decide("Switch to conders mode.", "dictate", {}, set()).sticky == "converse"


def test_words_typed_ahead_never_begin_with_a_would_be_name():
    for partial in ("Conders, what is", "Con verse what is", "Yet another meeting is", "Jet lag is bad"):
        assert may_name_a_mode(partial, {})
        assert not plainly_dictated(partial, {}, set())
    assert plainly_dictated("Please send the report", {}, set())
    assert not plainly_dictated("Think what is the", {"converse": ["think"]}, set())


def test_a_name_said_on_its_own_picks_the_mode_of_the_next_utterance(tmp_path):
    assert [named_alone(t, {}) for t in ("Jet.", " Chat", "Con verse.", "Jet", "Yeah.", "Jet lag.")] == [
        "chat",
        "chat",
        "converse",
        "",
        "",
        "",
    ]
    assert decide("Jet.", "dictate", {}, set()).next == "chat"
    router = Harness(Router, tmp_path)
    router.send("asr", Transcript("Jet."), utt="u1", reliable=True)  # vad ended the utterance at the pause
    router.send("asr", Transcript("Tell me a joke.", partial=True), utt="u2", key="u2~4", reliable=True)
    assert [f.body.text for f in router.published("keystrokes")] == [""]  # nothing typed, not even ahead
    router.crash()  # the mode waiting for the next utterance survives a restart
    router.send("asr", Transcript("Tell me a joke."), utt="u2", reliable=True)
    [request] = router.published("request")
    assert (request.body.mode, request.body.text) == ("chat", "Tell me a joke.")
    assert (router.stage.next_mode, router.stage.mode) == ("", "dictate")  # for one utterance only


def test_held_out_speech_through_real_tiny_en_is_routed_as_measured():
    """The `held` clips at Piper's normal speed (16 with a mode's name first, 13 that only
    begin like one, 12 that use a mode's name as an ordinary word; never used to choose
    a threshold), cut by vad and recognised by tiny.en with the asr stage's settings,
    then routed by `decide` with the pauses asr finds. Measured here: 13 of 16 routed
    right (all 4 chat clips are cut by vad after the name: "Jet." and "Jack." alone;
    "Jack." is too far from "chat", "Jeff to rope..." and "clarified so..." have no
    pause), no look-alike switched, and none of the sentences that begin with a name
    said straight on ("Chat logs show...": at all speeds, 22 of 36 switched before the
    pause rule).
    The bar leaves room for one clip each way."""
    from bench import modes
    from bus import config

    directory = AUDIO / "modes"
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    chosen = {c["file"] for c in manifest["clips"] if c["split"] == "held" and c["speed"] == 1.0}
    settings = config.load(None, [])
    rows = modes.transcribe(settings, directory, lambda message: None, only=chosen)
    scores = modes.score(rows, modes.by_router({}, {"stop", "cancel"}))["held"]
    assert (scores["prefixed"], scores["lookalikes"], scores["ordinary"]) == (16, 25, 12)
    assert scores["routed"] >= 12, scores["missed_joined"]
    assert scores["switched"] <= 1, scores["false_switches"]
    assert scores["ordinary_switched"] <= 1, scores["false_switches"]
    assert scores["routed_joined"] >= 12, scores["missed_joined"]
