"""keys' acknowledgements (`typed`) across a restart of keys: whoever listens can rebuild
exactly what was typed, even when it missed an acknowledgement, and nothing is typed
twice. The keys stage runs as a real process on real sockets, the test playing the
router and the model stages, and the replay's `Replay` rebuilding the document."""

import time

import pytest

from bus.frames import Frame, Keystrokes, Typed
from bus.replay import Replay

from conftest import LoneStage


def rebuilt(acks: list[Frame]) -> str:
    state = Replay()
    for frame in acks:
        state.on_frame(frame)
    return state.text


def ack(utt: str, text: str = "", **fields) -> Frame:
    return Frame(body=Typed(text=text, **fields), src="keys", utt=utt)


def test_an_acknowledgement_adds_only_what_its_listener_does_not_know():
    assert Typed(text="Hello").unseen("") == "Hello"
    assert Typed(text=" world", offset=5).unseen("Hello") == " world"
    assert Typed(text="", offset=11, already="Hello world").unseen("Hello world") == ""
    assert Typed(text="", offset=11, already="Hello world").unseen("Hello") == " world"
    assert Typed(text="!", offset=11, already="Hello world").unseen("Hello") == " world!"
    assert Typed(text="lo world", offset=3).unseen("Hello") == " world"  # what overlaps is known
    assert Typed(text=" world", offset=5).unseen("Hel") == " world"  # a gap: added as the sink had it


def test_the_document_is_rebuilt_from_repeated_and_missed_acknowledgements():
    first = [
        ack("u1", "Keep this."),
        ack("u2", " Paris", offset=0, final=False),
        ack("u2", " is", offset=6, final=False),
    ]
    # keys restarted; the pieces of u2 came again, then the rest of the answer
    again = [
        ack("u2", "", offset=9, already=" Paris is", final=False),
        ack("u2", "", offset=9, already=" Paris is", final=False),
        ack("u2", " the capital.", offset=9),
    ]
    expected = "Keep this. Paris is the capital."
    assert rebuilt(first + again) == expected
    assert rebuilt(first[:1] + again) == expected  # the first acknowledgements of u2 were missed
    assert rebuilt(first + again + again) == expected


def test_backspaces_are_applied_once_per_utterance():
    typed = [ack("u1", "Keep this."), ack("u2", " Not this.", offset=0)]
    scratch = ack("u3", backspaces=len(" Not this."))
    scratch_again = ack("u3", backspaces=len(" Not this."), already="")
    assert rebuilt([*typed, scratch]) == "Keep this."
    assert rebuilt([*typed, scratch, scratch_again, scratch_again]) == "Keep this."
    assert rebuilt([*typed, scratch_again]) == "Keep this."  # only the repeat was heard


def test_a_failed_piece_adds_nothing():
    state = Replay()
    state.on_frame(ack("u1", "Typed."))
    state.on_frame(ack("u2", "", error="xdotool type failed: no display", offset=0))
    assert state.text == "Typed." and state.rows["u2"]["errors"] == ["xdotool type failed: no display"]


@pytest.fixture
def keys(tmp_path):
    sink = tmp_path / "typed.txt"
    stage = LoneStage("keys", ["router", "instruct", "thinking"], f'stages.keys.sink="file:{sink}"')
    stage.sink = sink
    try:
        yield stage
    finally:
        stage.close()


def acks_until(keys: LoneStage, utt: str, final: bool = True) -> list[Frame]:
    got = keys.frames(lambda f: f.topic == "typed" and f.utt == utt and (f.body.final or not final))
    return [f for f in got if f.topic == "typed"]


def test_a_restarted_keys_types_only_once_its_listeners_hear_it(keys):
    """Listeners reconnect to a restarted keys by themselves, some time after it binds.
    Keystrokes that reach it at once are held until then: the acknowledgement that
    says what was typed is heard."""
    router = keys.upstream["router"]
    router.publish(Keystrokes(text="First."), utt="u1")
    acks_until(keys, "u1")
    keys.kill_and_restart()
    heard = []
    while not heard:  # from the moment the new process starts, as vad's re-send would
        router.publish(Keystrokes(text=" Second."), utt="u2")
        frame = keys.downstream.receive(10)
        if frame is not None and frame.topic == "typed" and frame.utt == "u2":
            heard.append(frame.body)
        assert keys.process.poll() is None
    assert (heard[0].text, heard[0].already, heard[0].offset) == (" Second.", "", 0)
    assert keys.sink.read_text() == "First. Second."


def test_a_piece_that_comes_again_after_a_restart_is_acknowledged_with_what_was_typed(keys):
    """keys typed some of a model's answer (and a listener may have missed those
    acknowledgements, as when keys dies before publishing one); after the restart the
    answer is re-generated: each repeated piece is acknowledged with what the sink
    already had, and only the rest is typed."""
    router, instruct = keys.upstream["router"], keys.upstream["instruct"]
    router.publish(Keystrokes(text="Keep this."), utt="u1")
    before = acks_until(keys, "u1")
    instruct.publish(Keystrokes(text=" Paris", final=False, offset=0), utt="u2")
    instruct.publish(Keystrokes(text=" is", final=False, offset=6), utt="u2")
    before += acks_until(keys, "u2", final=False)
    before += acks_until(keys, "u2", final=False)
    keys.kill_and_restart()
    keys.wait_ready()
    instruct.publish(Keystrokes(text=" Paris", final=False, offset=0), utt="u2")
    instruct.publish(Keystrokes(text=" is", final=False, offset=6), utt="u2")
    instruct.publish(Keystrokes(text=" the capital.", final=True, offset=9), utt="u2")
    after = acks_until(keys, "u2")
    assert [(f.body.text, f.body.already, f.body.offset) for f in after] == [("", " Paris is", 9), ("", " Paris is", 9), (" the capital.", "", 9)]
    expected = "Keep this. Paris is the capital."
    assert keys.sink.read_text() == expected
    assert rebuilt(before + after) == expected
    assert rebuilt(before[:1] + after) == expected  # missed every first acknowledgement of u2

    # The whole utterance comes again: acknowledged with all of it, nothing typed.
    instruct.publish(Keystrokes(text=" the capital.", final=True, offset=9), utt="u2")
    [again] = acks_until(keys, "u2")
    assert (again.body.text, again.body.already, again.body.offset) == ("", " Paris is the capital.", len(" Paris is the capital."))

    # "Scratch that": the erasure is acknowledged again after a restart, and applied once.
    erase = len(" Paris is the capital.")
    router.publish(Keystrokes(text="", backspaces=erase), utt="u3")
    scratch = acks_until(keys, "u3")
    keys.kill_and_restart()
    keys.wait_ready()
    router.publish(Keystrokes(text="", backspaces=erase), utt="u3")
    scratch_again = acks_until(keys, "u3")
    assert scratch_again[-1].body.backspaces == erase
    assert keys.sink.read_text() == "Keep this."
    assert rebuilt(before + after + scratch + scratch_again) == "Keep this."
    assert rebuilt(before + after + scratch_again) == "Keep this."


def test_a_piece_after_a_gap_waits_for_the_answer_to_come_again(keys):
    """keys was down while the start of an answer was sent: the rest must not be typed
    out of order, nor acknowledged as final (vad would then never re-send it). When the
    answer comes again from the start, all of it is typed, once."""
    instruct = keys.upstream["instruct"]
    instruct.publish(Keystrokes(text=" is Paris.", final=True, offset=14), utt="u1")
    instruct.publish(Keystrokes(text="Marker.", final=True, offset=0), utt="u0")
    got = keys.frames(lambda f: f.topic == "typed" and f.utt == "u0")
    assert [f.utt for f in got if f.topic == "typed"] == ["u0"], "nothing acknowledged for the piece after the gap"
    instruct.publish(Keystrokes(text=" The capital", final=False, offset=0), utt="u1")
    instruct.publish(Keystrokes(text=" is Paris.", final=True, offset=12), utt="u1")
    acks_until(keys, "u1")
    assert keys.sink.read_text() == "Marker. The capital is Paris."
    deadline = time.monotonic() + 5
    while "pieces_after_a_gap" not in keys.beat().counters and time.monotonic() < deadline:
        keys.downstream.receive(100)  # the next heartbeat carries the counter
    assert keys.beat().counters.get("pieces_after_a_gap") == 1
