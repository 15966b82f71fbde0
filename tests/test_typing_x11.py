"""The xdotool sink types into a real X client (xterm under Xvfb); the test reads it back."""

import pytest
from conftest import assert_said, replay, spoken

from bench.sessions import Xterm
from stages.keys.xdotool import XdotoolSink


@pytest.fixture
def xterm_capture(x_display, tmp_path, monkeypatch):
    """An xterm whose shell writes every typed line to a file; yields a reader."""
    monkeypatch.setenv("DISPLAY", x_display)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    xterm = Xterm(x_display, tmp_path / "xterm.txt")
    yield xterm.read_back
    xterm.close()


def test_xdotool_sink_types_unicode_and_backspaces(xterm_capture):
    sink = XdotoolSink(delay_ms=5)
    sink.type(0, "café ✓ ß, naïve")
    sink.type(len(", naïve"), "!")
    assert xterm_capture() == "café ✓ ß!\n"


@pytest.mark.parametrize("sink", ["xdotool", "auto"])
def test_replay_types_into_the_focused_window(xterm_capture, monkeypatch, sink):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)  # an X11 session: auto picks xdotool
    printed = replay("dictate_report.wav", "--sink", sink)
    assert_said(printed, spoken("dictate_report.wav"))
    assert xterm_capture() == printed + "\n"
