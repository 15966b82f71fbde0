"""The user can always stop a model: a spoken stop word ("cancel") or `voxkey cancel`
ends every answer in progress at once, nothing more of it is typed, and the next
utterance is taken at once. The rule in process (the router's frames in and out), then
the real router process on real sockets, the test playing asr, the model and keys.
How soon the model itself stops is tests/test_thinking_path.py (within one token)."""

from conftest import LoneStage, voxkey
from harness import Harness

from bus.delivery import piece_key
from bus.frames import Ack, Frame, Keystrokes, Transcript
from stages.router.meaning import decide
from stages.router.stage import Router

STOP_WORDS = {"stop", "cancel"}
ASKED = Transcript("Chat. Tell me a long story.", pauses_ms=[420, 0, 0])  # the name stands apart


def answer_piece(router: Harness, text: str, offset: int, final: bool = False) -> Frame:
    return router.send(
        "instruct",
        Keystrokes(text=text, final=final, offset=offset),
        utt="q",
        key=piece_key("q", offset),
        reliable=True,
    )


def test_a_stop_word_stops_only_what_is_in_progress():
    assert decide("Cancel.", "dictate", {}, STOP_WORDS, stopping=True).stop
    assert decide("Cancel.", "chat", {}, STOP_WORDS).stop  # in a model mode there is nothing else to do with it
    dictated = decide("Cancel.", "dictate", {}, STOP_WORDS)  # nothing to stop: the user's word is typed
    assert (dictated.stop, dictated.mode, dictated.text) == (False, "dictate", "Cancel.")


def test_a_spoken_cancel_is_heard_while_it_waits_and_nothing_more_of_the_answer_is_typed(tmp_path):
    router = Harness(Router, tmp_path)
    router.send("asr", ASKED, utt="q", reliable=True)
    [request] = router.published("request")
    answer_piece(router, " Once", 0)
    router.send("asr", Transcript("Cancel."), utt="c", reliable=True)  # waits: q is not typed yet
    assert not router.published("cancel")
    router.stage.tick()  # the loop turn after it arrived
    [cancel] = router.published("cancel")
    assert cancel.utt == "q" and not [f for f in router.published("keystrokes") if f.utt == "c"]
    answer_piece(router, " upon a time", 5)  # generated before the cancel reached the model
    answer_piece(router, "", 17, final=True)
    typed = [f.body for f in router.published("keystrokes") if f.utt == "q"]
    assert [(k.text, k.offset, k.final) for k in typed] == [(" Once", 0, False), ("", 5, True)]
    router.ack(request, by="instruct")
    router.ack(*router.published("keystrokes"), by="keys")  # keys typed q: the stop word is taken next
    [said] = [f.body for f in router.published("keystrokes") if f.utt == "c"]
    assert (said.text, said.final) == ("", True)  # the stop word itself types nothing
    router.ack(*router.published("keystrokes"), by="keys")
    router.send("asr", Transcript("Hello there."), utt="n", reliable=True)
    # Taken at once, and typed on from what reached the app (" Once", so no capital).
    assert [f.body.text for f in router.published("keystrokes") if f.utt == "n"] == [" hello there."]
    router.crash()  # what was cancelled, and the stop word taken as one, survive a restart
    assert (router.stage.cancelled, router.stage.stops_heard, router.stage.answering) == (["q"], ["c"], {})


def test_a_stop_word_said_while_an_answer_was_in_progress_types_nothing_even_if_heard_after(tmp_path):
    router = Harness(Router, tmp_path)
    router.send("asr", ASKED, utt="q", reliable=True, marks={"speech_start": 1})
    answer_piece(router, " Done.", 0)
    answer_piece(router, "", 6, final=True)  # the answer ended before the stop word was heard
    ended = router.stage.answer_ended_ns
    router.ack(*router.published("request"), by="instruct")
    router.ack(*router.published("keystrokes"), by="keys")
    router.send("asr", Transcript("Stop."), utt="late", reliable=True, marks={"speech_start": ended - 1})
    router.ack(*router.published("keystrokes"), by="keys")
    router.send("asr", Transcript("Stop."), utt="after", reliable=True, marks={"speech_start": ended + 1})
    typed = {f.utt: f.body.text for f in router.published("keystrokes") if f.utt in ("late", "after")}
    assert typed == {"late": "", "after": " Stop."}  # said after the answer: the user's word, typed


def test_voxkey_cancel_and_a_spoken_cancel_stop_a_real_router_at_once():
    router = LoneStage("router", ["asr", "instruct", "keys"])
    try:
        nothing = voxkey("cancel", "--set", f"bus.run_dir={router.run_dir}")
        assert nothing.returncode == 0 and "nothing to cancel" in nothing.stderr
        router.send("asr", ASKED, utt="q1", key="q1")
        router.handed_to("instruct", lambda f: f.topic == "request" and f.utt == "q1")
        result = voxkey("cancel", "--set", f"bus.run_dir={router.run_dir}")
        assert result.returncode == 0 and "cancelled 1 answer(s)" in result.stderr
        assert router.frames(lambda f: f.topic == "cancel")[-1].utt == "q1"
        finish(router, "q1")
        # Spoken: the stop word waits behind q2 (not answered yet) and still cancels it.
        router.send("asr", ASKED, utt="q2", key="q2")
        router.handed_to("instruct", lambda f: f.topic == "request" and f.utt == "q2")
        router.send("asr", Transcript("Cancel."), utt="c", key="c")
        assert router.frames(lambda f: f.topic == "cancel")[-1].utt == "q2"
        finish(router, "q2")
        router.handed_to("keys", lambda f: f.topic == "keystrokes" and f.utt == "c")
        [said] = [f.body for f in router.handed["keys"] if f.utt == "c"]
        assert (said.text, said.final) == ("", True)
    finally:
        router.close()


def finish(router: LoneStage, utt: str) -> None:
    """The model ends the cancelled answer with its final piece; keys types it and
    acknowledges everything it was handed."""
    router.send("instruct", Keystrokes(text="", final=True, offset=0), utt=utt, key=piece_key(utt, 0))
    router.handed_to("keys", lambda f: f.topic == "keystrokes" and f.utt == utt and f.body.final)
    keys = router.neighbours["keys"]
    for frame in router.handed["keys"]:
        keys.send(Frame(Ack(topic=frame.topic, keys=[frame.key]), src="keys", to="router"))
    request = next(f for f in router.handed["instruct"] if f.utt == utt)
    router.neighbours["instruct"].send(Frame(Ack(topic=request.topic, keys=[request.key]), src="instruct", to="router"))


def test_a_cancelled_clarify_still_types_what_was_said(tmp_path):
    router = Harness(Router, tmp_path)
    router.send("asr", Transcript("Clarify. So um the meeting moved.", pauses_ms=[380]), utt="q", reliable=True)
    assert router.published("request")[0].body.mode == "clarify"
    router.stage.on_control("cancel", {})
    assert [f.utt for f in router.published("cancel")] == ["q"]
    answer_piece(router, "So um the meeting moved.", 0)  # instruct types the original when cancelled
    answer_piece(router, "", 24, final=True)
    typed = [f.body for f in router.published("keystrokes") if f.utt == "q"]
    assert [(k.text, k.final) for k in typed] == [("So um the meeting moved.", False), ("", True)]
