"""The `clipboard` sink: pastes the text, then puts back what the clipboard held.

Uses wl-copy and the wayland sink's keyboard (or wtype) on Wayland, xclip and xdotool on X11. Puts the text on the
clipboard, presses the paste chord, waits until the app has taken the text, then puts
back what the clipboard held before (in its preferred type only). Immune to keyboard
layouts, but the chord must be the app's paste key (terminals use ctrl+shift+v), and a
clipboard manager that reads every new selection takes the paste before the app does:
that is reported, not typed wrongly. wl-copy's one-paste mode is known not to reach
XWayland windows: for those, session="x11".
"""

import os
import select
import subprocess
import tempfile
import time
from collections.abc import Mapping

from stages.keys.sinks import (
    TOOL_TIMEOUT_S,
    SinkError,
    SinkUnavailable,
    explain,
    not_installed,
    parse_chord,
    require_session,
    require_tools,
    run_tool,
    stuck,
    tool_env,
)
from stages.keys.wayland import WaylandSink, offers_virtual_keyboard
from stages.keys.wtype import WtypeSink
from stages.keys.xdotool import XdotoolSink

PASTE_TIMEOUT_S = 2.0
# Types a clipboard may hold, best first for putting it back: text in UTF-8 when offered.
PREFERRED_TYPES = ("text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "STRING")
# X11 selection targets that describe a selection rather than hold its content.
META_TARGETS = {"TARGETS", "MULTIPLE", "TIMESTAMP", "SAVE_TARGETS", "DELETE", "INSERT_SELECTION", "INSERT_PROPERTY"}


def start_server(argv: list[str], env: Mapping[str, str], data: bytes) -> subprocess.Popen:
    """Starts a clipboard tool that stays behind to serve `data` and returns at once.
    Its stderr stays a pipe: every process it forks keeps the write end, so the end of
    that pipe is the end of the last of them."""
    try:
        server = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise not_installed(argv[0]) from None
    server.stdin.write(data)
    server.stdin.close()
    return server


def daemonize(argv: list[str], env: Mapping[str, str], data: bytes) -> None:
    """Runs a clipboard tool that forks a server and exits once the data is on the
    clipboard. Its stderr goes to a file: a pipe would be held open by the server."""
    with tempfile.TemporaryFile() as errors:
        try:
            done = subprocess.run(
                argv, env=env, input=data, stdout=subprocess.DEVNULL, stderr=errors, timeout=TOOL_TIMEOUT_S
            )
        except FileNotFoundError:
            raise not_installed(argv[0]) from None
        except subprocess.TimeoutExpired:
            raise stuck(argv[0]) from None
        if done.returncode != 0:
            errors.seek(0)
            raise SinkError(explain(argv[0], errors.read().decode(errors="replace"), env))


def preferred_type(types: list[str]) -> str | None:
    """The type to save a clipboard in: UTF-8 text if offered, else its first real type."""
    for wanted in PREFERRED_TYPES:
        if wanted in types:
            return wanted
    return next((kind for kind in types if kind not in META_TARGETS), None)


class Offer:
    """Text on the clipboard for one paste. `wait_ended` tells when the tool serving it
    is gone: it served one paste, or another program took the clipboard."""

    def __init__(self, server: subprocess.Popen):
        self.server = server
        self.said = b""  # its stderr so far

    def wait_for(self, seconds: float, said: bytes = b"") -> bool:
        """Waits until the server said `said` (if given) or ended; True if it did."""
        deadline = time.monotonic() + seconds
        pipe = self.server.stderr.fileno()
        while not (said and said in self.said):
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return False
            chunk = os.read(pipe, 4096)
            if not chunk:
                return not said
            self.said += chunk
        return True

    def wait_ended(self, seconds: float) -> bool:
        return self.wait_for(seconds)

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.kill()
        self.server.wait()
        self.server.stderr.close()


def wayland_keys(delay_ms: int, env: Mapping[str, str]):
    """What presses the paste chord on Wayland: the held-open keyboard where the
    compositor offers one, else wtype."""
    return WaylandSink(env=env) if offers_virtual_keyboard(env) else WtypeSink(delay_ms, env=env)


class WaylandClipboard:
    keys = staticmethod(wayland_keys)
    tools = ("wl-copy", "wl-paste")
    session = "WAYLAND_DISPLAY"

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def save(self) -> tuple[str, bytes] | None:
        """What the clipboard holds, in its preferred type; None if it is empty."""
        listed = run_tool(["wl-paste", "--list-types"], self.env, empty=b"No selection")
        kind = listed and preferred_type(listed.decode(errors="replace").split("\n"))
        if not kind:
            return None
        return kind, run_tool(["wl-paste", "--no-newline", "--type", kind], self.env)

    def offer(self, text: str) -> Offer:
        # Without --foreground, wl-copy exits once its server has set the selection;
        # --paste-once makes that server exit after the first paste.
        server = start_server(
            ["wl-copy", "--paste-once", "--type", "text/plain;charset=utf-8"], self.env, text.encode()
        )
        try:
            server.wait(TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            Offer(server).close()
            raise SinkError(
                f"wl-copy did not set the clipboard within {TOOL_TIMEOUT_S:g} s: is the compositor responding?"
            ) from None
        if server.returncode != 0:  # no server was left behind: its stderr is at its end
            said = server.stderr.read().decode(errors="replace")
            server.stderr.close()
            raise SinkError(explain("wl-copy", said, self.env))
        return Offer(server)

    def restore(self, saved: tuple[str, bytes] | None, offer: Offer) -> None:
        if saved:  # replacing the selection ends our offer's server too
            daemonize(["wl-copy", "--type", saved[0]], self.env, saved[1])
        elif not offer.wait_ended(0):
            run_tool(["wl-copy", "--clear"], self.env)


class X11Clipboard:
    keys = XdotoolSink
    tools = ("xclip",)
    session = "DISPLAY"

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def save(self) -> tuple[str, bytes] | None:
        """What the clipboard holds, in its preferred type; None if nobody owns it."""
        listed = run_tool(["xclip", "-o", "-selection", "clipboard", "-t", "TARGETS"], self.env, empty=b"not available")
        kind = listed and preferred_type(listed.decode(errors="replace").split("\n"))
        if not kind:
            return None
        return kind, run_tool(["xclip", "-o", "-selection", "clipboard", "-t", kind], self.env)

    def offer(self, text: str) -> Offer:
        # -quiet keeps xclip in the foreground (ours to stop) and makes it say when it
        # owns the clipboard; -loops 1 ends it after one paste (TARGETS queries aside).
        server = start_server(
            ["xclip", "-quiet", "-selection", "clipboard", "-loops", "1", "-t", "UTF8_STRING", "-i"],
            self.env,
            text.encode(),
        )
        offer = Offer(server)
        if not offer.wait_for(TOOL_TIMEOUT_S, b"Waiting for"):
            said = offer.said.decode(errors="replace")
            offer.close()
            raise SinkError(
                explain("xclip", said, self.env)
                if said
                else "xclip did not take the clipboard: is the X server responding?"
            )
        return offer

    def restore(self, saved: tuple[str, bytes] | None, offer: Offer) -> None:
        # With nothing saved, Offer.close ending our xclip leaves the clipboard empty.
        if saved:
            daemonize(["xclip", "-selection", "clipboard", "-t", saved[0], "-i"], self.env, saved[1])


class ClipboardSink:
    """Pastes the text through the clipboard, then puts back what the clipboard held."""

    name = "clipboard"

    def __init__(
        self,
        paste_chord: str = "ctrl+v",
        session: str | None = None,
        delay_ms: int = 4,
        env: Mapping[str, str] | None = None,
        paste_timeout_s: float = PASTE_TIMEOUT_S,
    ):
        self.env = tool_env(env)
        parse_chord(paste_chord)
        if session is None:  # as choose_sink: Wayland first, it reaches every window
            session = "wayland" if self.env.get("WAYLAND_DISPLAY") else "x11" if self.env.get("DISPLAY") else None
        if session is None:
            raise SinkUnavailable(
                "the clipboard sink needs a Wayland or X11 session: neither WAYLAND_DISPLAY nor DISPLAY is set"
            )
        backend = {"wayland": WaylandClipboard, "x11": X11Clipboard}.get(session)
        if backend is None:
            raise SinkUnavailable(f"unknown clipboard session {session!r}: use wayland or x11")
        require_tools(self.env, *backend.tools)
        require_session(self.env, backend.session, "clipboard")
        self.clipboard = backend(self.env)
        self.keys = backend.keys(delay_ms, env=self.env)
        self.session = session
        self.chord = paste_chord
        self.paste_timeout_s = paste_timeout_s

    def type(self, backspaces: int, text: str) -> None:
        if backspaces:
            self.keys.type(backspaces, "")
        if not text:
            return
        saved = self.clipboard.save()
        offer = self.clipboard.offer(text)
        try:
            if offer.wait_ended(0):
                raise SinkError(
                    "another program (a clipboard manager?) took the text off the clipboard before the paste: "
                    "use sink=wtype or sink=xdotool"
                )
            self.keys.press(self.chord)
            if not offer.wait_ended(self.paste_timeout_s):
                raise SinkError(
                    f"the focused app did not paste within {self.paste_timeout_s:g} s of {self.chord}: "
                    "set the app's paste key as paste_chord (terminals use ctrl+shift+v)"
                )
        finally:
            try:
                self.clipboard.restore(saved, offer)
            finally:
                offer.close()


def copy_text(text: str, env: Mapping[str, str] | None = None) -> str:
    """Puts `text` on the clipboard and leaves it there (`voxkey held copy`): the user
    pastes it where it belongs. Wayland first, as ClipboardSink; returns the session's
    name, or SinkError."""
    env = tool_env(env)
    session = "wayland" if env.get("WAYLAND_DISPLAY") else "x11" if env.get("DISPLAY") else None
    if session is None:
        raise SinkUnavailable("copying needs a Wayland or X11 session: neither WAYLAND_DISPLAY nor DISPLAY is set")
    backend = WaylandClipboard if session == "wayland" else X11Clipboard
    require_tools(env, *backend.tools)
    # Without a one-paste option both tools leave a server behind that serves the text
    # until another program takes the clipboard, and exit once it is set.
    if session == "wayland":
        daemonize(["wl-copy", "--type", "text/plain;charset=utf-8"], env, text.encode())
    else:
        daemonize(["xclip", "-selection", "clipboard", "-t", "UTF8_STRING", "-i"], env, text.encode())
    return session
