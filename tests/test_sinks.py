"""Typing sinks (stages/keys/sinks.py): which sink a session gets, and each sink typing into a
real app whose input the test reads back: xterm under Xvfb for X11, foot under a headless
sway for Wayland. The apps run `cat` on a tty in canonical mode, so a line reaches the
file at its Return, and BackSpace erases within the line, as the tty does."""

import os
import shutil
import stat
import subprocess

import pytest

from bench.sessions import XTERM_PASTES_ON_CTRL_V, Xterm
from stages.keys.choice import choose_sink, open_sink
from stages.keys.clipboard import ClipboardSink, preferred_type
from stages.keys.sinks import PIECE, FileSink, SinkError, SinkUnavailable, StdoutSink, parse_chord
from stages.keys.wtype import WtypeSink, wtype_calls
from stages.keys.xdotool import RECYCLE_AFTER_S, XdotoolSink, bindings_for, parse_keymap


def require(*tools: str) -> None:
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run ./install")


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


# --- choosing a sink: pure -------------------------------------------------------------

ALL_TOOLS = {"wtype", "xdotool", "wl-copy", "xclip"}


@pytest.mark.parametrize(
    "env, installed, kind, because",
    [
        ({"WAYLAND_DISPLAY": "wayland-1", "XDG_SESSION_TYPE": "wayland"}, ALL_TOOLS, "wtype", "Wayland session"),
        (
            {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"},
            ALL_TOOLS,
            "wtype",
            "every window",
        ),
        ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, {"xdotool"}, "xdotool", "only XWayland windows"),
        ({"WAYLAND_DISPLAY": "wayland-1"}, {"xdotool", "wl-copy"}, "stdout", "apt-get install wtype"),
        ({"XDG_SESSION_TYPE": "wayland"}, ALL_TOOLS, "stdout", "WAYLAND_DISPLAY is not set"),
        ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, ALL_TOOLS, "xdotool", "X11 session"),
        ({"DISPLAY": ":0"}, {"wtype", "xclip"}, "stdout", "apt-get install xdotool"),
        ({}, ALL_TOOLS, "stdout", "no graphical session"),
        ({"XDG_SESSION_TYPE": "tty"}, set(), "stdout", "no graphical session"),
    ],
    ids=[
        "wayland",
        "xwayland",
        "xwayland-without-wtype",
        "wayland-without-tools",
        "wayland-type-without-display",
        "x11",
        "x11-without-xdotool",
        "none",
        "tty-without-tools",
    ],
)
def test_choose_sink_follows_the_session_and_installed_tools(env, installed, kind, because):
    chosen, reason = choose_sink(env, which=lambda tool: f"/usr/bin/{tool}" if tool in installed else None)
    assert chosen == kind
    assert because in reason and "\n" not in reason


def test_open_sink_auto_keeps_its_reason_and_unknown_specs_list_the_valid_ones(tmp_path):
    sink = open_sink("auto", env={"PATH": os.environ["PATH"]})
    assert sink.name == "stdout" and "no graphical session" in sink.reason
    require("wtype")
    sink = open_sink("auto", env={"PATH": os.environ["PATH"], "WAYLAND_DISPLAY": "wayland-1"})
    assert isinstance(sink, WtypeSink) and "Wayland session" in sink.reason
    assert isinstance(open_sink(f"file:{tmp_path / 'doc.txt'}"), FileSink)
    for spec in ("typewriter", "file:", "ydotool"):
        with pytest.raises(SinkUnavailable) as refused:
            open_sink(spec)
        assert "use auto, stdout, file:PATH, wayland, xdotool, wtype, uinput, hid, hid:PATH or clipboard" in one_line(
            refused.value
        )


def test_sinks_that_cannot_work_here_say_what_to_install_or_set():
    require("wtype", "xdotool")
    with pytest.raises(SinkUnavailable) as refused:
        WtypeSink(env={"PATH": "/nonexistent", "WAYLAND_DISPLAY": "wayland-1"})
    assert one_line(refused.value) == "wtype is not installed: apt-get install wtype"
    with pytest.raises(SinkUnavailable) as refused:
        WtypeSink(env={"PATH": os.environ["PATH"]})
    assert one_line(refused.value).startswith("WAYLAND_DISPLAY is not set")
    with pytest.raises(SinkUnavailable) as refused:
        XdotoolSink(env={"PATH": os.environ["PATH"]})
    assert one_line(refused.value).startswith("DISPLAY is not set")
    with pytest.raises(SinkUnavailable) as refused:
        ClipboardSink(env={"PATH": os.environ["PATH"]})
    assert "neither WAYLAND_DISPLAY nor DISPLAY" in one_line(refused.value)
    with pytest.raises(SinkUnavailable) as refused:
        ClipboardSink("ctrl+alt+v", env={"PATH": os.environ["PATH"], "DISPLAY": ":0"})
    assert "ctrl+v, ctrl+shift+v, shift+Insert" in one_line(refused.value)


# --- pure pieces ---------------------------------------------------------------------


def test_wtype_calls_name_special_keys_and_split_long_text():
    assert wtype_calls(2, "a-b\n-c", delay_ms=0, pause_ms=100) == [
        ["wtype", "-s", "100", "-k", "BackSpace", "-k", "BackSpace", "a-b", "-k", "Return", "-k", "minus", "c"]
    ]
    calls = wtype_calls(3, "x" * (2 * PIECE), delay_ms=4, pause_ms=100)
    assert len(calls) == 3  # 3 backspaces + 128 characters, at most PIECE keys per call
    assert all(call[:5] == ["wtype", "-s", "100", "-d", "4"] for call in calls)
    assert calls[0][5:11] == ["-k", "BackSpace"] * 3 and calls[0][11] == "x" * (PIECE - 3)
    assert [call[5:] for call in calls[1:]] == [["x" * PIECE], ["x" * 3]]


def test_characters_no_key_types_get_spare_keycodes():
    keymap = parse_keymap(
        "There are 7 KeySyms per KeyCode; KeyCodes range from 8 to 12.\n\n"
        "      8    \t\n"
        "      9    \t0xff1b (Escape)\t0x0000 (NoSymbol)\t0xff1b (Escape)\t\n"
        "     10    \t0x0063 (c)\t0x0043 (C)\t0x0061 (a)\t0x0066 (f)\n"
        "     11    \t\n"
        "     12    \t0x10000e9 (no name)\t0x10000e9 (no name)\n"  # not é's keysym: that is 0xe9
    )
    assert keymap == {8: [], 9: [0xFF1B, 0xFF1B], 10: [0x63, 0x43, 0x61, 0x66], 11: [], 12: [0x10000E9, 0x10000E9]}
    # Keycode 8 is never used; 11 is free; c, a, f are typed by keycode 10.
    assert bindings_for("café ✓\n", keymap, ours={}, now=100.0) == {11: 0xE9}
    # Keycodes this sink bound are taken back once idle, least recently typed first.
    keymap[11] = [0xE9, 0xE9]
    ours = {12: 99.5, 11: 99.0}
    assert bindings_for("ß", keymap, ours, now=100.0) == {}
    assert bindings_for("ß✓", keymap, ours, now=99.0 + RECYCLE_AFTER_S) == {11: 0xDF}
    assert bindings_for("ß✓", keymap, ours, now=99.5 + RECYCLE_AFTER_S) == {11: 0xDF, 12: 0x1002713}


def test_chords_and_clipboard_types():
    assert parse_chord("ctrl+shift+v") == (["ctrl", "shift"], "v")
    assert parse_chord("shift+Insert") == (["shift"], "Insert")
    assert preferred_type(["TARGETS", "STRING", "UTF8_STRING"]) == "UTF8_STRING"
    assert preferred_type(["image/png", "text/plain", "text/plain;charset=utf-8"]) == "text/plain;charset=utf-8"
    assert preferred_type(["TARGETS", "TIMESTAMP", "image/png"]) == "image/png"
    assert preferred_type(["TARGETS"]) is None


def test_stdout_and_file_sinks_keep_their_behaviour(tmp_path, capsys):
    StdoutSink().type(2, "hé")
    assert capsys.readouterr().out == "\b\bhé"
    sink = FileSink(str(tmp_path / "doc.txt"))
    sink.type(0, "café ✓ ß, naïve")
    sink.type(7, "!\n")
    assert (tmp_path / "doc.txt").read_text(encoding="utf-8") == "café ✓ ß!\n"
    with pytest.raises(SinkUnavailable):
        FileSink(str(tmp_path / "missing" / "doc.txt"))


# --- X11: xterm under Xvfb -----------------------------------------------------------


@pytest.fixture
def xterm(x_display, tmp_path, monkeypatch):
    """Starts an xterm whose shell writes every typed line to a file; returns its reader."""
    require("xterm", "xdotool", "xmodmap", "xclip")
    monkeypatch.setenv("DISPLAY", x_display)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    started = []

    def start(*xterm_args: str):
        started.append(Xterm(x_display, tmp_path / f"xterm{len(started)}.txt", *xterm_args))
        return started[-1].read_back

    yield start
    for app in started:
        app.close()


def x_clipboard() -> str:
    return subprocess.run(["xclip", "-o", "-selection", "clipboard"], capture_output=True, text=True, timeout=10).stdout


def test_xdotool_types_unicode_backspaces_and_newlines_under_any_locale(xterm):
    read_back = xterm()
    # Under the C locale xdotool refuses non-ASCII text: the sink runs it under UTF-8.
    sink = XdotoolSink(delay_ms=2, env={**os.environ, "LC_ALL": "C"})
    sink.type(0, "first line\ncafé ✓ ß, naïve")
    sink.type(len(", naïve"), "!")
    assert read_back() == "first line\ncafé ✓ ß!\n"


def test_clipboard_on_x11_pastes_exactly_and_restores_the_clipboard(xterm):
    read_back = xterm(*XTERM_PASTES_ON_CTRL_V)
    # xclip -i forks a server that keeps the clipboard: no pipe for it to hold open
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-i"],
        input=b"before \xe2\x9c\x93",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    sink = ClipboardSink("ctrl+v", delay_ms=2)
    assert sink.session == "x11"
    sink.type(0, "one\npasted café ✓ ß, naïve")
    sink.type(len(", naïve"), "!")
    assert x_clipboard() == "before ✓"
    assert read_back() == "one\npasted café ✓ ß!\n"


# --- Wayland: foot under headless sway -----------------------------------------------


def test_wtype_types_unicode_backspaces_and_return_exactly(foot):
    # Each call is a new wtype, whose first key is the one at risk; LC_ALL=C would make
    # wtype refuse non-ASCII text, were the sink not running it under UTF-8.
    sink = WtypeSink(delay_ms=2, env={**foot.env, "LC_ALL": "C"})
    got = foot.typed(lambda: (sink.type(0, "café ✓ ß, naïve"), sink.type(len(", naïve"), "!\n")))
    assert got == "café ✓ ß!\n"


def test_wtype_types_long_text_in_pieces_without_losing_a_key(foot):
    sink = WtypeSink(delay_ms=1, env=foot.env)
    line = "-dash first, " + "éß✓ 0123456789 abcdefghijklmnopqrstuvwxyz " * 3 + "-- end"
    assert len(wtype_calls(0, line + "\n", 1, 100)) == 3
    assert foot.typed(lambda: sink.type(0, line + "\n")) == line + "\n"


@pytest.mark.parametrize("before", ["before ✓", None], ids=["text", "empty"])
def test_clipboard_on_wayland_pastes_exactly_and_restores_the_clipboard(foot, before):
    foot.copy(before)
    sink = ClipboardSink("ctrl+shift+v", session="wayland", delay_ms=2, env=foot.env)  # foot's paste key
    got = foot.typed(lambda: (sink.type(0, "one\npasted café ✓ ß, naïve"), sink.type(len(", naïve"), "!\n")), lines=2)
    assert got == "one\npasted café ✓ ß!\n"
    assert foot.clipboard() == before


def test_clipboard_reports_an_app_that_did_not_paste_and_still_restores(foot):
    foot.copy("kept ✓")
    # In foot, shift+Insert pastes the primary selection, not the clipboard.
    sink = ClipboardSink("shift+Insert", session="wayland", env=foot.env, paste_timeout_s=0.5)
    with pytest.raises(SinkError) as failed:
        sink.type(0, "never pasted")
    assert "did not paste" in one_line(failed.value)
    assert foot.clipboard() == "kept ✓"
    assert foot.typed(lambda: WtypeSink(env=foot.env).type(0, "\n")) == "\n"  # nothing reached the app


def test_a_failing_tool_raises_a_one_line_sink_error():
    require("wtype", "wl-copy", "wl-paste")
    env = {**os.environ, "WAYLAND_DISPLAY": "/nonexistent/wayland-9"}
    for sink in (WtypeSink(env=env), ClipboardSink(session="wayland", env=env)):
        with pytest.raises(SinkError) as failed:
            sink.type(1, "x")
        assert "cannot connect to the Wayland display '/nonexistent/wayland-9'" in one_line(failed.value)
        assert not isinstance(failed.value, SinkUnavailable)


@pytest.mark.parametrize("spec", ["file", "hid"])
def test_a_file_sink_keeps_what_was_said_private_and_follows_no_link(tmp_path, spec):
    """What was typed is the user's: the file a sink creates is readable by its owner
    alone, and a symbolic link planted at the path is refused, not followed."""
    document = tmp_path / "typed"
    open_sink(f"{spec}:{document}", hid_layout="us", hid_delay_ms=0).type(0, "secret plans")
    assert stat.S_IMODE(document.stat().st_mode) == 0o600
    elsewhere, planted = tmp_path / "elsewhere", tmp_path / "planted"
    planted.symlink_to(elsewhere)
    with pytest.raises(SinkUnavailable):
        open_sink(f"{spec}:{planted}", hid_layout="us", hid_delay_ms=0).type(0, "secret plans")
    assert not elsewhere.exists()
