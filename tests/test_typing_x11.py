"""The xdotool sink types into a real X client (xterm under Xvfb); the test reads it back."""

import subprocess
import time

import pytest

from stages.sinks import XdotoolSink

from conftest import replay, spoken, words


@pytest.fixture
def xterm_capture(x_display, tmp_path, monkeypatch):
    """An xterm whose shell writes every typed line to a file; yields a reader."""
    monkeypatch.setenv("DISPLAY", x_display)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    out = tmp_path / "xterm.txt"
    xterm = subprocess.Popen(["xterm", "-u8", "-e", "sh", "-c", f"stty -echo; cat > {out}"])
    deadline = time.monotonic() + 15
    while True:  # the window exists before it is mapped; focus only succeeds once it is viewable
        assert time.monotonic() < deadline, "xterm window did not appear"
        time.sleep(0.2)
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(xterm.pid)], capture_output=True, text=True)
        windows = found.stdout.split()
        if windows and subprocess.run(["xdotool", "windowfocus", "--sync", windows[-1]], capture_output=True, timeout=10).returncode == 0:
            break

    def read_back() -> str:
        subprocess.run(["xdotool", "key", "Return", "ctrl+d"], check=True)
        xterm.wait(timeout=10)
        return out.read_text(encoding="utf-8")

    yield read_back
    if xterm.poll() is None:
        xterm.kill()


def test_xdotool_sink_types_unicode_and_backspaces(xterm_capture):
    sink = XdotoolSink(delay_ms=5)
    sink.type(0, "café ✓ ß, naïve")
    sink.type(len(", naïve"), "!")
    assert xterm_capture() == "café ✓ ß!\n"


@pytest.mark.parametrize("sink", ["xdotool", "auto"])
def test_replay_types_into_the_focused_window(xterm_capture, monkeypatch, sink):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)  # an X11 session: auto picks xdotool
    printed = replay("dictate_report.wav", "--sink", sink)
    assert words(printed) == words(spoken("dictate_report.wav"))
    assert xterm_capture() == printed + "\n"
