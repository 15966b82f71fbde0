"""Nothing lands late in the wrong place: an utterance whose typing would begin more than
`max_age_s` after its end of speech is held, not typed, kept across a restart of keys,
shown to the user, and typed, copied or dropped with `voxkey held`. In-process for the
rule (frames in, frames out, the real file sink), then keys as a real process on real
sockets with the real `voxkey held` command, and the real clipboard of a real X server
and a real headless sway."""

import re
import subprocess

import pytest
from conftest import LoneStage, voxkey
from harness import Harness, keys_typing_to_a_file
from test_chunks import until

from bus.frames import Frame, Keystrokes, now_ns
from stages.keys.stage import Keys


def said(seconds_ago: float) -> dict:
    """An utterance's marks, its speech having ended `seconds_ago` (the clock every process shares)."""
    return {"speech_end": now_ns() - int(seconds_ago * 1e9)}


def piece(keys: Harness, utt: str, text: str, ago: float, offset: int = 0, final: bool = True, **fields) -> None:
    strokes = Keystrokes(text=text, offset=offset, final=final, **fields)
    keys.send("router", strokes, utt=utt, key=f"{utt}+{offset}", marks=said(ago))


@pytest.fixture
def keys(tmp_path):
    return keys_typing_to_a_file(Keys, tmp_path, "stages.keys.max_age_s=10")


def progress(keys: Harness) -> dict:
    return keys.stage.on_control("status", {})["progress"]


def test_only_the_first_keys_of_an_utterance_are_judged_by_its_age(keys):
    piece(keys, "u1", "Fresh.", ago=1, by="router")
    piece(keys, "u2", " Old news.", ago=14, by="router")
    assert keys.sink.read_text() == "Fresh."
    typed, held = keys.published("typed")
    assert typed.body.held == "" and (held.body.text, held.body.held) == ("", "said 14 s ago")
    assert {"u1+0", "u2+0"} <= {key for ack in keys.acks(to="router") for key in ack.body.keys}  # the pipeline goes on
    assert (progress(keys)["held"], progress(keys)["held_reason"]) == (1, "said 14 s ago")

    # An answer whose first keys came in time goes on, however long the rest takes.
    piece(keys, "u3", " Paris", ago=9, final=False, by="instruct")
    piece(keys, "u3", " is the capital.", ago=60, offset=6, by="instruct")
    assert keys.sink.read_text() == "Fresh. Paris is the capital."

    # The pieces of a held answer join its held text in order; a piece sent again adds nothing.
    piece(keys, "u4", " One", ago=30, final=False, by="instruct")
    piece(keys, "u4", " two", ago=30, offset=4, final=False, by="instruct")
    piece(keys, "u4", " One", ago=30, final=False, by="instruct")
    piece(keys, "u4", " three.", ago=30, offset=8, by="instruct")
    listed = keys.stage.on_held("list", show=True)["held"]
    assert [(item["utt"], item["text"], item["complete"]) for item in listed] == [
        ("u2", " Old news.", True),
        ("u4", " One two three.", True),
    ]
    assert all("text" not in item for item in keys.stage.on_held("list", show=False)["held"])
    assert keys.sink.read_text() == "Fresh. Paris is the capital."
    assert progress(keys)["held"] == 2


def test_held_text_survives_a_restart_and_is_typed_in_order_when_asked(keys):
    piece(keys, "u1", "Typed.", ago=1)
    piece(keys, "u2", " Held one.", ago=20)
    piece(keys, "u3", " Held two.", ago=15)
    for n in range(120):  # more utterances than keys remembers for "scratch that"
        piece(keys, f"n{n}", "", ago=1)
    keys.crash()
    assert progress(keys)["held"] == 2 and progress(keys)["held_said_ns"] > 0
    keys.clear()
    reply = keys.stage.on_held("type", show=False)
    assert reply["done"] == "typed 2" and len(reply["held"]) == 2
    assert keys.sink.read_text() == "Typed. Held one. Held two."
    reports = keys.published("typed")
    assert [(f.utt, f.body.text, f.body.held) for f in reports] == [("u2", " Held one.", ""), ("u3", " Held two.", "")]
    assert reports[0].marks["first_key"] - reports[0].marks["speech_end"] > 20e9  # its latency is what it was
    assert progress(keys)["held"] == 0 and keys.stage.on_held("list", show=False)["held"] == []
    # What follows of it now is typed, and "scratch that" erases it: it reached the app.
    piece(keys, "u4", "", ago=1, backspaces=len(" Held two."), erases="u3")
    assert keys.sink.read_text() == "Typed. Held one."


def test_scratch_that_erases_nothing_of_a_held_utterance_and_drops_it(keys):
    piece(keys, "u1", "Keep.", ago=1)
    piece(keys, "u2", " Take back.", ago=20)
    piece(keys, "u3", "", ago=1, backspaces=len(" Take back."), erases="u2")
    assert keys.sink.read_text() == "Keep."
    assert keys.published("typed")[-1].body.backspaces == 0
    assert keys.stage.held() == {} and progress(keys)["held"] == 0
    # An erase said too long ago is not pressed either: it would erase in whatever window has the focus.
    piece(keys, "u4", " More.", ago=1)
    piece(keys, "u5", "", ago=30, backspaces=len(" More."), erases="u4")
    assert keys.sink.read_text() == "Keep. More."
    assert keys.published("typed")[-1].body.held == "said 30 s ago: not erased"


def test_drop_forgets_held_text_and_the_rest_of_its_answer(keys):
    piece(keys, "u1", " An answer", ago=20, final=False, by="instruct")
    assert keys.stage.on_held("drop", show=False)["done"] == "dropped 1"
    piece(keys, "u1", " goes on.", ago=20, offset=10, by="instruct")
    assert keys.stage.held() == {} and not keys.sink.read_text()
    with pytest.raises(ValueError, match="unknown action"):
        keys.stage.on_held("paste", show=False)


def test_max_age_zero_types_everything_however_late(tmp_path):
    document = tmp_path / "doc.txt"
    keys = Harness(Keys, tmp_path, f'stages.keys.sink="file:{document}"', "stages.keys.max_age_s=0")
    piece(keys, "u1", "Very late.", ago=3600)
    assert document.read_text() == "Very late."


# --- real processes: keys on real sockets, the real command --------------------------


def send_late(keys: LoneStage, utt: str, text: str, ago: float) -> None:
    """The router hands keys an utterance said `ago` seconds ago (LoneStage.send carries no marks)."""
    frame = Frame(
        body=Keystrokes(text=text, by="router"),
        src="router",
        utt=utt,
        marks=said(ago),
        to="keys",
        to_pid=keys.process.pid,
        key=f"{utt}+0",
    )
    keys.neighbours["router"].send(frame)
    [*_, typed] = keys.frames(lambda f: f.topic == "typed" and f.utt == utt)
    assert typed.body.held.startswith("said")


def held(keys: LoneStage, *args: str) -> str:
    result = voxkey("held", *args, "--set", f'bus.run_dir="{keys.run_dir}"')
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.fixture
def lone_keys(tmp_path):
    document = tmp_path / "doc.txt"
    keys = LoneStage("keys", ["router"], f'stages.keys.sink="file:{document}"')
    keys.document = document
    yield keys
    keys.log = keys.close()


def test_voxkey_held_lists_and_types_what_keys_held_across_a_restart(lone_keys):
    keys = lone_keys
    send_late(keys, "u1", "Said while you were away.", ago=30)
    until(keys, lambda: keys.beat().progress.get("held") == 1, "keys' heartbeat never said it holds one")
    listed = held(keys)
    assert "1 utterance held" in listed and int(re.search(r"said (\d+) s ago", listed)[1]) >= 30
    assert "away" not in listed  # the text only with --show
    assert "'Said while you were away.'" in held(keys, "list", "--show")
    keys.kill_and_restart()
    keys.wait_ready()
    assert "1 utterance held" in held(keys)  # kept in keys' state file
    assert "typed 1" in held(keys, "type")
    assert keys.document.read_text() == "Said while you were away."
    [*_, typed] = keys.frames(lambda f: f.topic == "typed" and f.utt == "u1")
    assert typed.body.text == "Said while you were away."
    assert "nothing is held" in held(keys)


@pytest.mark.parametrize("session", ["x11", "wayland"])
def test_voxkey_held_copy_puts_the_text_on_the_clipboard(session, request, monkeypatch, tmp_path):
    if session == "x11":
        display = request.getfixturevalue("x_display")
        monkeypatch.setenv("DISPLAY", display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

        def clipboard() -> str:
            argv = ["xclip", "-o", "-selection", "clipboard", "-t", "UTF8_STRING"]
            return subprocess.run(argv, capture_output=True, timeout=10, check=True).stdout.decode()
    else:
        foot = request.getfixturevalue("foot")
        monkeypatch.setenv("WAYLAND_DISPLAY", foot.env["WAYLAND_DISPLAY"])
        monkeypatch.delenv("DISPLAY", raising=False)
        clipboard = foot.clipboard
    document = tmp_path / "doc.txt"
    keys = LoneStage("keys", ["router"], f'stages.keys.sink="file:{document}"')  # started with that session
    try:
        send_late(keys, "u1", "Café ✓ naïve,", ago=20)
        send_late(keys, "u2", " then more.", ago=12)
        assert "copied 24 characters" in held(keys, "copy")
        assert clipboard() == "Café ✓ naïve, then more."
        assert "nothing is held" in held(keys)
        assert not document.read_text()
    finally:
        keys.close()


def test_held_text_stays_held_when_typing_it_fails(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    keys = Harness(Keys, tmp_path, f'stages.keys.sink="file:{folder / "doc.txt"}"')
    piece(keys, "u1", "Held.", ago=20)
    (folder / "doc.txt").unlink()
    folder.rmdir()  # the sink fails for real (its file's folder is gone)
    with pytest.raises(ValueError, match="typed 0 of 1; the rest is still held: the file sink failed"):
        keys.stage.on_held("type", show=False)
    assert [done.held_text for done in keys.stage.held().values()] == ["Held."]
    assert progress(keys)["held"] == 1
    assert keys.published("typed")[-1].body.error.startswith("the file sink failed")
