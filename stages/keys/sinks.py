"""Typing sinks: the interface every sink keeps, its errors, what the tool sinks share,
and the two sinks that need no tool.

A sink has a `name` and `type(backspaces, text)`: press BackSpace `backspaces` times,
then type `text`, in which "\\n" is Return. It returns once the keys were handed over
(to the X server or the Wayland compositor, or written), and raises `SinkError`, whose
message is one line naming the problem and its fix, when they were not: a sink never
fails silently. A sink that knows what did reach the app when it was less than asked
(the hid sink skips characters the host's layout cannot type) returns it as
(backspaces, text), or puts it on its error as `reached`. Building a sink whose tool or
session is missing raises `SinkUnavailable` (a `SinkError`) at once, before anything is
typed.

Tool sinks type long texts in pieces of at most `PIECE` keys per tool call, so no call
blocks for long and a stuck session is noticed within `TOOL_TIMEOUT_S`.

- `stdout`: needs nothing. Backspaces are written as "\\b".
- `file:PATH`: a writable file, kept exactly as typed: a backspace removes its last
  character, as in an editor.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PIECE = 64
TOOL_TIMEOUT_S = 10.0
# xdotool and wtype decode their text argument with the C library, which refuses
# anything but ASCII under the C or POSIX locale (what supervisord and systemd give).
UTF8_LOCALE = {"LC_ALL": "C.UTF-8"}
DEBIAN_PACKAGE = {
    "xdotool": "xdotool",
    "xmodmap": "x11-xserver-utils",
    "wtype": "wtype",
    "wl-copy": "wl-clipboard",
    "wl-paste": "wl-clipboard",
    "xclip": "xclip",
}
PASTE_CHORDS = ("ctrl+v", "ctrl+shift+v", "shift+Insert")


class SinkError(OSError):
    """Keys did not reach the app; the message is one line naming the problem and its fix."""

    reached: tuple[int, str] = (0, "")  # what did reach it, as (backspaces, text), when a sink knows


class SinkUnavailable(SinkError):
    """The sink cannot be used here at all (tool not installed, no session)."""


# --- running the tools ---------------------------------------------------------------


def tool_env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**(os.environ if env is None else env), **UTF8_LOCALE}


def require_tools(env: Mapping[str, str], *tools: str) -> None:
    for tool in tools:
        if not shutil.which(tool, path=env.get("PATH", os.defpath)):
            raise SinkUnavailable(str(not_installed(tool)))


def require_session(env: Mapping[str, str], variable: str, sink: str) -> None:
    if not env.get(variable):
        kind = "a Wayland" if variable == "WAYLAND_DISPLAY" else "an X11"
        raise SinkUnavailable(
            f"{variable} is not set: the {sink} sink needs {kind} session (start voxkey from inside it)"
        )


def explain(tool: str, stderr: str, env: Mapping[str, str]) -> str:
    """One line saying why `tool` failed and what to do about it."""
    said = " ".join(stderr.split()) or "no message"
    if "Wayland connection failed" in stderr or "Failed to connect to a Wayland" in stderr:
        return (
            f"{tool} cannot connect to the Wayland display {env.get('WAYLAND_DISPLAY')!r}: "
            "is the compositor running and WAYLAND_DISPLAY right?"
        )
    if "virtual keyboard protocol" in stderr:
        return (
            f"{tool}: the compositor lacks the virtual-keyboard protocol (GNOME and KDE do): "
            "use a wlroots compositor (sway, labwc), or sink=xdotool for XWayland windows"
        )
    if "Can't open display" in stderr:
        return f"{tool} cannot open the X display {env.get('DISPLAY')!r}: is the X server running and DISPLAY right?"
    if "multi-byte" in stderr:
        return f"{tool} could not decode the text ({said}): run it under a UTF-8 locale"
    return f"{tool} failed: {said}"


def not_installed(tool: str) -> SinkError:
    return SinkError(f"{tool} is not installed: apt-get install {DEBIAN_PACKAGE[tool]}")


def stuck(tool: str) -> SinkError:
    return SinkError(f"{tool} did not finish within {TOOL_TIMEOUT_S:g} s: is the session frozen or locked?")


def run_tool(argv: list[str], env: Mapping[str, str], empty: bytes = b"") -> bytes | None:
    """Runs a tool that exits when done: its output, None if it failed saying `empty`
    (when given), or SinkError."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=TOOL_TIMEOUT_S)
    except FileNotFoundError:
        raise not_installed(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise stuck(argv[0]) from None
    if done.returncode != 0:
        if empty and empty in done.stderr:
            return None
        raise SinkError(explain(argv[0], done.stderr.decode(errors="replace"), env))
    return done.stdout


def chunks(count: int, size: int = PIECE) -> list[int]:
    """`count` keys as the sizes of consecutive calls."""
    return [min(size, count - start) for start in range(0, count, size)]


def pieces(text: str, size: int = PIECE) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def parse_chord(chord: str) -> tuple[list[str], str]:
    """ "ctrl+shift+v" -> (["ctrl", "shift"], "v")."""
    *modifiers, key = chord.split("+")
    # Only ctrl and shift mean the same to wtype and xdotool (wtype 0.4 sends "alt" as AltGr).
    if not key or any(modifier not in ("ctrl", "shift") for modifier in modifiers):
        raise SinkUnavailable(f"paste chord {chord!r} is not supported: use one of {', '.join(PASTE_CHORDS)}")
    return modifiers, key


# --- sinks without tools -------------------------------------------------------------


class StdoutSink:
    name = "stdout"

    def __init__(self):
        self.out = sys.stdout

    def type(self, backspaces: int, text: str) -> None:
        self.out.write("\b" * backspaces + text)
        self.out.flush()


def open_private(path: str | Path, flags: int) -> int:
    """A descriptor for a file that receives what the user said: made readable by its
    owner alone, and never through a symbolic link (one planted there would send the
    text elsewhere)."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


class FileSink:
    """Appends to a file; a backspace removes the file's last character, as it would in
    an editor (so it works the same after keys restarts)."""

    name = "file"

    def __init__(self, path: str):
        self.path = Path(path)
        try:
            os.close(open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
        except OSError as error:
            raise SinkUnavailable(f"cannot open typing sink file {path}: {error.strerror}") from None

    def type(self, backspaces: int, text: str) -> None:
        if backspaces:
            with open(open_private(self.path, os.O_RDONLY), encoding="utf-8") as file:
                kept = file.read()[:-backspaces]
            with open(open_private(self.path, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as file:
                file.write(kept)
        with open(open_private(self.path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8") as file:
            file.write(text)
