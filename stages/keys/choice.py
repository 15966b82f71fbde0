"""Choosing a sink: `choose_sink` picks one from the session's environment; `open_sink`
builds one from the `sink` setting ("auto" asks `choose_sink` and keeps its reason on
the sink). The interface every sink keeps, and its errors, are in stages/keys/sinks.py.

The sinks, each with its needs in its module's docstring:
- `stdout`, `file:PATH` (sinks.py): standard output, or a file kept as typed.
- `xdotool` (xdotool.py): X11 windows, XWayland ones under a Wayland compositor.
- `wayland` (wayland.py): Wayland windows, through one virtual keyboard keys holds open
  (compositors with the virtual-keyboard protocol: labwc, sway...). `auto` prefers it.
- `wtype` (wtype.py): the same protocol through the wtype tool, a new keyboard per call;
  `auto` falls back to it when the compositor cannot be asked.
- `clipboard` (clipboard.py): pastes through the clipboard, then puts it back.
- `uinput` (uinput.py): a kernel virtual keyboard, pressing what the user's layout needs.
- `hid`, `hid:PATH` (hid.py): the Pi as another computer's USB keyboard. Never chosen
  by `auto`.
"""

import os
import shutil
from collections.abc import Callable, Mapping

from stages.keys.clipboard import ClipboardSink
from stages.keys.hid import DEVICE, HidSink
from stages.keys.sinks import FileSink, SinkUnavailable, StdoutSink
from stages.keys.uinput import UinputSink, uinput_writable
from stages.keys.wayland import WaylandSink, offers_virtual_keyboard
from stages.keys.wtype import WtypeSink
from stages.keys.xdotool import XdotoolSink

SPECS = "auto, stdout, file:PATH, wayland, xdotool, wtype, uinput, hid, hid:PATH or clipboard"


def choose_sink(
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
    uinput: Callable[[], bool] = uinput_writable,
    virtual_keyboard: Callable[[Mapping[str, str]], bool] = offers_virtual_keyboard,
) -> tuple[str, str]:
    """The sink spec that suits the session described by `env`, and why, in words.

    The clipboard sink is never chosen: it needs the same key tool (wtype or xdotool)
    to press the paste chord, and that tool types directly without touching the user's
    clipboard. Choose it explicitly for apps where direct typing goes wrong.
    """
    wayland = env.get("WAYLAND_DISPLAY", "")
    display = env.get("DISPLAY", "")
    xdotool_reaches = f"xdotool (DISPLAY={display})" if display and which("xdotool") else ""
    if wayland:
        if virtual_keyboard(env):
            return (
                "wayland",
                f"Wayland session (WAYLAND_DISPLAY={wayland}) with the virtual-keyboard protocol: "
                "one keyboard held open types into every window",
            )
        if which("wtype"):
            return "wtype", f"Wayland session (WAYLAND_DISPLAY={wayland}): wtype types into every window"
        if xdotool_reaches:
            return (
                "xdotool",
                f"Wayland session without wtype: {xdotool_reaches} reaches only XWayland windows; "
                "apt-get install wtype to reach all",
            )
        if uinput():
            return (
                "uinput",
                "Wayland session without wtype: a kernel virtual keyboard (/dev/uinput) types into every window",
            )
        return "stdout", "Wayland session but wtype is not installed: apt-get install wtype"
    if env.get("XDG_SESSION_TYPE") == "wayland" and not xdotool_reaches:
        return (
            "stdout",
            "XDG_SESSION_TYPE is wayland but WAYLAND_DISPLAY is not set: "
            "start voxkey from inside the session, or set WAYLAND_DISPLAY",
        )
    if display:
        if xdotool_reaches:
            return "xdotool", f"X11 session: {xdotool_reaches} types into the focused window"
        return "stdout", "X11 session but xdotool is not installed: apt-get install xdotool"
    if uinput():
        return (
            "uinput",
            "no graphical session, and /dev/uinput is writable: a kernel virtual keyboard types into the console",
        )
    return "stdout", "no graphical session (neither WAYLAND_DISPLAY nor DISPLAY is set): typing to standard output"


def open_sink(
    spec: str,
    delay_ms: int = 4,
    paste_chord: str = "ctrl+v",
    env: Mapping[str, str] = os.environ,
    layout: str = "auto",
    hid_layout: str = "us",
    hid_delay_ms: int = 4,
):
    """The sink named by `spec` (see SPECS); it carries `reason`, why it is the one."""
    kind, _, argument = spec.partition(":")
    if kind == "auto":
        chosen, reason = choose_sink(env)
        sink = open_sink(chosen, delay_ms, paste_chord, env, layout, hid_layout, hid_delay_ms)
        sink.reason = reason
        return sink
    if kind == "stdout":
        sink = StdoutSink()
    elif kind == "file" and argument:
        sink = FileSink(argument)
    elif kind == "xdotool":
        sink = XdotoolSink(delay_ms, env=env)
    elif kind == "wayland":
        sink = WaylandSink(env=env)
    elif kind == "wtype":
        sink = WtypeSink(delay_ms, env=env)
    elif kind == "clipboard":
        sink = ClipboardSink(paste_chord, delay_ms=delay_ms, env=env)
    elif kind == "uinput":
        sink = UinputSink(layout, delay_ms, paste_chord, env=env)
    elif kind == "hid":
        sink = HidSink(argument or DEVICE, hid_layout, hid_delay_ms)
    else:
        raise SinkUnavailable(f"unknown typing sink {spec!r}: use {SPECS}")
    sink.reason = f"sink={spec} was asked for"
    return sink
