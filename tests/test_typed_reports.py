"""keys' reports (`typed`) across a restart of keys: whoever listens can rebuild
exactly what was typed, even when it missed a report, and nothing is typed
twice. The keys stage runs as a real process on real sockets, the test playing the
router and the model stages, and the replay's `Replay` rebuilding the document."""

import pytest
from conftest import LoneStage

from bus.frames import Frame, Keystrokes, Typed
from voxkey.replay import Replay


def rebuilt(acks: list[Frame]) -> str:
    state = Replay()
    for frame in acks:
        state.on_frame(frame)
    return state.text


def ack(utt: str, text: str = "", **fields) -> Frame:
    return Frame(body=Typed(text=text, **fields), src="keys", utt=utt)


def test_a_report_adds_only_what_its_listener_does_not_know():
    assert Typed(text="Hello").unseen("") == "Hello"
    assert Typed(text=" world", offset=5).unseen("Hello") == " world"
    assert Typed(text="", offset=11, already="Hello world").unseen("Hello world") == ""
    assert Typed(text="", offset=11, already="Hello world").unseen("Hello") == " world"
    assert Typed(text="!", offset=11, already="Hello world").unseen("Hello") == " world!"
    assert Typed(text="lo world", offset=3).unseen("Hello") == " world"  # what overlaps is known
    assert Typed(text=" world", offset=5).unseen("Hel") == " world"  # a gap: added as the sink had it


def test_the_document_is_rebuilt_from_repeated_and_missed_reports():
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
    assert rebuilt(first[:1] + again) == expected  # the first reports of u2 were missed
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
    stage = LoneStage("keys", ["router"], f'stages.keys.sink="file:{sink}"')
    stage.sink = sink
    try:
        yield stage
    finally:
        stage.close()


def acks_until(keys: LoneStage, utt: str, final: bool = True) -> list[Frame]:
    got = keys.frames(lambda f: f.topic == "typed" and f.utt == utt and (f.body.final or not final))
    return [f for f in got if f.topic == "typed"]


def piece(keys: LoneStage, utt: str, text: str, offset: int = 0, final: bool = True, **fields) -> None:
    keys.send("router", Keystrokes(text=text, offset=offset, final=final, **fields), utt=utt, key=f"{utt}+{offset}")


def test_pieces_sent_again_to_a_restarted_keys_are_reported_with_what_was_typed(keys):
    """keys typed some of a model's answer, then was killed before the router heard
    its acknowledgements; the router sends again what is unacknowledged: each repeated
    piece is reported with what the sink already had, and only the rest is typed."""
    piece(keys, "u1", "Keep this.", by="router")
    before = acks_until(keys, "u1")
    piece(keys, "u2", " Paris", 0, False, by="instruct")
    piece(keys, "u2", " is", 6, False, by="instruct")
    before += acks_until(keys, "u2", final=False)
    before += acks_until(keys, "u2", final=False)
    keys.kill_and_restart()
    keys.wait_ready()
    piece(keys, "u2", " Paris", 0, False, by="instruct")
    piece(keys, "u2", " is", 6, False, by="instruct")
    piece(keys, "u2", " the capital.", 9, True, by="instruct")
    after = acks_until(keys, "u2")
    assert [(f.body.text, f.body.already, f.body.offset) for f in after] == [
        ("", " Paris is", 9),
        ("", " Paris is", 9),
        (" the capital.", "", 9),
    ]
    expected = "Keep this. Paris is the capital."
    assert keys.sink.read_text() == expected
    assert rebuilt(before + after) == expected
    assert rebuilt(before[:1] + after) == expected  # missed every first report of u2
    acked = keys.frames(lambda f: f.topic == "ack" and "u2+9" in f.body.keys)
    assert all(f.to == "router" for f in acked if f.topic == "ack")

    # "Scratch that": the erasure is reported again after a restart, and applied once.
    erase = len(" Paris is the capital.")
    piece(keys, "u3", "", backspaces=erase, by="router")
    scratch = acks_until(keys, "u3")
    keys.kill_and_restart()
    keys.wait_ready()
    piece(keys, "u3", "", backspaces=erase, by="router")
    scratch_again = acks_until(keys, "u3")
    assert scratch_again[-1].body.backspaces == erase
    assert keys.sink.read_text() == "Keep this."
    assert rebuilt(before + after + scratch + scratch_again) == "Keep this."
    assert rebuilt(before + after + scratch_again) == "Keep this."
