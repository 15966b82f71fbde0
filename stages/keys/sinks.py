"""Typing sinks: every way voxkey's keys can reach an app, behind one interface.

A sink has a `name` and `type(backspaces, text)`: press BackSpace `backspaces` times,
then type `text`, in which "\\n" is Return. It returns once the keys were handed over
(to the X server or the Wayland compositor, or written), and raises `SinkError`, whose
message is one line naming the problem and its fix, when they were not: a sink never
fails silently. A sink that knows what did reach the app when it was less than asked
(the hid sink skips characters the host's layout cannot type) returns it as
(backspaces, text), or puts it on its error as `reached`. Building a sink whose tool or
session is missing raises `SinkUnavailable` (a `SinkError`) at once, before anything is
typed.

What each sink needs, and what it gives:
- `stdout`: nothing. Backspaces are written as "\\b".
- `file:PATH`: a writable file, kept exactly as typed: a backspace removes its last
  character, as in an editor.
- `xdotool`: an X11 session (DISPLAY), xdotool and xmodmap. Reaches X11 windows only:
  under a Wayland compositor, XWayland windows but never native Wayland ones. Any
  Unicode character: those no key types are bound to spare keycodes first, and stay so.
- `wtype`: a Wayland session (WAYLAND_DISPLAY) whose compositor offers the
  virtual-keyboard protocol: the wlroots ones (sway, labwc, Hyprland, river), not GNOME
  or KDE. Any Unicode character, whatever the user's keyboard layout.
- `uinput`: a kernel virtual keyboard (/dev/uinput, writable: the `input` group and a
  udev rule). Works on any compositor and on the text console, but sends key codes, so
  it presses what the user's keyboard layout needs (`layout`, stages/keys/layouts.py); a
  character the layout has no key for is pasted through the clipboard when a session
  allows, and reported otherwise, never typed wrong.
- `hid` or `hid:PATH`: the Pi as the USB keyboard of another computer (stages/keys/hid.py):
  boot-keyboard reports to /dev/hidg0, made by `voxkey gadget setup`, or to a file or
  FIFO. Presses what the host's layout (`hid_layout`) needs; what it cannot type is
  skipped and reported. Never chosen by `auto`.
- `clipboard`: wl-copy and wtype on Wayland, xclip and xdotool on X11. Puts the text on
  the clipboard, presses the paste chord, waits until the app has taken the text, then
  puts back what the clipboard held before (in its preferred type only). Immune to
  keyboard layouts, but the chord must be the app's paste key (terminals use
  ctrl+shift+v), and a clipboard manager that reads every new selection takes the
  paste before the app does: that is reported, not typed wrongly. wl-copy's one-paste
  mode is known not to reach XWayland windows: for those, session="x11".

`choose_sink` picks one from the session's environment; `open_sink` builds one from the
`sink` setting ("auto" asks `choose_sink` and keeps its reason on the sink).
Long texts are typed in pieces of at most `PIECE` keys per tool call, so no call blocks
for long and a stuck session is noticed within `TOOL_TIMEOUT_S`.
"""

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from stages.keys import layouts

PIECE = 64
TOOL_TIMEOUT_S = 10.0
PASTE_TIMEOUT_S = 2.0
# wtype uploads a new keymap on every call, and a key that reaches the focused app
# before the app has applied that keymap is lost. Measured into foot under headless
# sway: without a pause, the first key of a call was lost in at least 18 of 60 calls
# (3 of 60 with both cores busy); with a pause of 25, 50 or 100 ms, in none of 100 or
# more calls each, idle or busy. 100 ms keeps a margin for slower machines.
WTYPE_FIRST_KEY_PAUSE_MS = 100
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
SPECS = "auto, stdout, file:PATH, xdotool, wtype, uinput, hid, hid:PATH or clipboard"
UINPUT = "/dev/uinput"
PASTE_CHORDS = ("ctrl+v", "ctrl+shift+v", "shift+Insert")


class SinkError(OSError):
    """Keys did not reach the app; the message is one line naming the problem and its fix."""

    reached: tuple[int, str] = (0, "")  # what did reach it, as (backspaces, text), when a sink knows


class SinkUnavailable(SinkError):
    """The sink cannot be used here at all (tool not installed, no session)."""


# --- choosing a sink -----------------------------------------------------------------


def uinput_writable(device: str = UINPUT) -> bool:
    return os.access(device, os.W_OK)


def uinput_problem(device: str = UINPUT) -> str:
    """Why the uinput sink cannot open `device`, with the fix; "" if it can."""
    if not os.path.exists(device):
        return f"{device} does not exist: sudo modprobe uinput (and add uinput to /etc/modules to keep it)"
    if not uinput_writable(device):
        return (
            f'{device} is not writable: add the udev rule KERNEL=="uinput", GROUP="input", MODE="0660" '
            "and join the input group (sudo usermod -aG input $USER), then log in again"
        )
    return ""


def choose_sink(
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
    uinput: Callable[[], bool] = uinput_writable,
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
        if which("wtype"):
            return "wtype", f"Wayland session (WAYLAND_DISPLAY={wayland}): wtype types into every window"
        if xdotool_reaches:
            return (
                "xdotool",
                f"Wayland session without wtype: {xdotool_reaches} reaches only XWayland windows; apt-get install wtype to reach all",
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
            "XDG_SESSION_TYPE is wayland but WAYLAND_DISPLAY is not set: start voxkey from inside the session, or set WAYLAND_DISPLAY",
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
    elif kind == "wtype":
        sink = WtypeSink(delay_ms, env=env)
    elif kind == "clipboard":
        sink = ClipboardSink(paste_chord, delay_ms=delay_ms, env=env)
    elif kind == "uinput":
        sink = UinputSink(layout, delay_ms, paste_chord, env=env)
    elif kind == "hid":
        from stages.keys.hid import DEVICE, HidSink  # it builds on this module

        sink = HidSink(argument or DEVICE, hid_layout, hid_delay_ms)
    else:
        raise SinkUnavailable(f"unknown typing sink {spec!r}: use {SPECS}")
    sink.reason = f"sink={spec} was asked for"
    return sink


# --- sinks without tools -------------------------------------------------------------


class StdoutSink:
    name = "stdout"

    def __init__(self):
        self.out = sys.stdout

    def type(self, backspaces: int, text: str) -> None:
        self.out.write("\b" * backspaces + text)
        self.out.flush()


class FileSink:
    """Appends to a file; a backspace removes the file's last character, as it would in
    an editor (so it works the same after keys restarts)."""

    name = "file"

    def __init__(self, path: str):
        self.path = Path(path)
        try:
            self.path.open("a", encoding="utf-8").close()
        except OSError as error:
            raise SinkUnavailable(f"cannot open typing sink file {path}: {error.strerror}") from None

    def type(self, backspaces: int, text: str) -> None:
        if backspaces:
            kept = self.path.read_text(encoding="utf-8")[:-backspaces]
            self.path.write_text(kept, encoding="utf-8")
        with self.path.open("a", encoding="utf-8") as file:
            file.write(text)


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
        return f"{tool} cannot connect to the Wayland display {env.get('WAYLAND_DISPLAY')!r}: is the compositor running and WAYLAND_DISPLAY right?"
    if "virtual keyboard protocol" in stderr:
        return f"{tool}: the compositor lacks the virtual-keyboard protocol (GNOME and KDE do): use a wlroots compositor (sway, labwc), or sink=xdotool for XWayland windows"
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


# --- X11 -----------------------------------------------------------------------------

# xdotool types a character that no key produces by binding it to a spare keycode for
# one key press and unbinding it at once: an app that looks the key up after the unbind
# (a busy one) gets nothing, or the next such character. Measured into xterm under
# Xvfb with both cores busy: "café ✓ ß naïve über" typed exactly 0 of 8 times at
# --delay 12, 2 of 8 at 5; with the bindings below, 80 of 80 lines of such text at
# --delay 1 to 12.
# So the sink binds such characters to spare keycodes itself, before typing, and leaves
# them bound: the X server tells every app of a new mapping before any key typed after
# it, so no timing is involved. A spare keycode keeps its character until it is needed
# for another one, which waits until the keys typed with it have long been read (a new
# mapping applies to keys still queued in a busy app, too).
RECYCLE_AFTER_S = 2.0


def keysym_of(char: str) -> int:
    code = ord(char)
    # Latin-1 characters are keysyms of the same value; the others have Unicode keysyms.
    return code if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF else 0x1000000 + code


def parse_keymap(listing: str) -> dict[int, list[int]]:
    """`xmodmap -pk` output -> {keycode: its keysyms}, NoSymbol left out."""
    keymap = {}
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            keymap[int(fields[0])] = [
                int(field, 16) for field in fields[1:] if field.startswith("0x") and int(field, 16)
            ]
    return keymap


def bindings_for(text: str, keymap: dict[int, list[int]], ours: dict[int, float], now: float) -> dict[int, int]:
    """{spare keycode: keysym} for the characters of `text` that no key types. Spare:
    unbound keycodes, highest first (far from real keys), then keycodes this sink bound
    (`ours`: keycode -> when last typed) idle for RECYCLE_AFTER_S, least recent first.
    Characters left without one are bound by xdotool itself, as before."""
    bound = {keysym for keysyms in keymap.values() for keysym in keysyms}
    wanted = [keysym_of(char) for char in dict.fromkeys(text) if char != "\n" and keysym_of(char) not in bound]
    spare = [code for code in sorted(keymap, reverse=True) if not keymap[code] and code > 8]
    spare += [code for code in sorted(ours, key=ours.get) if code in keymap and now - ours[code] >= RECYCLE_AFTER_S]
    return dict(zip(spare, wanted))


class XdotoolSink:
    """Types into the focused X11 window through XTEST (no root needed)."""

    name = "xdotool"

    def __init__(self, delay_ms: int = 4, env: Mapping[str, str] | None = None):
        self.env = tool_env(env)
        require_tools(self.env, "xdotool", "xmodmap")
        require_session(self.env, "DISPLAY", "xdotool")
        self.delay = str(delay_ms)
        self.ours: dict[int, float] = {}  # keycodes this sink bound -> when last typed

    def type(self, backspaces: int, text: str) -> None:
        for count in chunks(backspaces):
            run_tool(["xdotool", "key", "--delay", self.delay] + ["BackSpace"] * count, self.env)
        for piece in pieces(text):  # xdotool types "\n" as Return
            typed_with = self.bind(piece)
            run_tool(["xdotool", "type", "--delay", self.delay, "--", piece], self.env)
            self.ours.update(dict.fromkeys(typed_with, time.monotonic()))

    def bind(self, text: str) -> list[int]:
        """Binds the characters of `text` that no key types to spare keycodes; returns
        the keycodes of this sink that `text` will use."""
        # Even ASCII: a non-Latin layout may lack it. Reading the keymap takes ~3 ms.
        keymap = parse_keymap(run_tool(["xmodmap", "-pk"], self.env).decode())
        binding = bindings_for(text, keymap, self.ours, time.monotonic())
        if binding:
            expressions = []
            for code, keysym in binding.items():
                expressions += ["-e", f"keycode {code} = 0x{keysym:x} 0x{keysym:x}"]  # shifted or not
                keymap[code] = [keysym]
            run_tool(["xmodmap", *expressions], self.env)
        used = {keysym_of(char) for char in text}
        return [code for code in [*self.ours, *binding] if used.intersection(keymap.get(code, []))]

    def press(self, chord: str) -> None:
        parse_chord(chord)
        # --clearmodifiers: a modifier the user still holds would change the chord
        run_tool(["xdotool", "key", "--clearmodifiers", chord], self.env)


# --- Wayland -------------------------------------------------------------------------


def keys_of(backspaces: int, text: str) -> list[str]:
    """One entry per key press: a character, or a key name (longer than one character)."""
    return ["BackSpace"] * backspaces + ["Return" if char == "\n" else char for char in text]


def wtype_argv(keys: list[str], delay_ms: int, pause_ms: int) -> list[str]:
    """One wtype call pressing `keys` (see keys_of) in order."""
    argv = ["wtype"]
    if pause_ms:
        argv += ["-s", str(pause_ms)]
    if delay_ms:
        argv += ["-d", str(delay_ms)]
    run = ""

    def flush() -> None:
        nonlocal run
        # A text argument starting with "-" would be read as an option. Each text
        # argument follows an option, or wtype would put a space before it.
        while run.startswith("-"):
            argv.extend(["-k", "minus"])
            run = run[1:]
        if run:
            argv.append(run)
        run = ""

    for key in keys:
        if len(key) == 1:
            run += key
        else:
            flush()
            argv.extend(["-k", key])
    flush()
    return argv


def wtype_calls(backspaces: int, text: str, delay_ms: int, pause_ms: int) -> list[list[str]]:
    """The wtype calls that type it all, at most PIECE keys each. Backspaces share a call
    with the text after them: each call pays the first-key pause."""
    keys = keys_of(backspaces, text)
    return [wtype_argv(keys[start : start + PIECE], delay_ms, pause_ms) for start in range(0, len(keys), PIECE)]


class WtypeSink:
    """Types into the focused Wayland window through the virtual-keyboard protocol."""

    name = "wtype"

    def __init__(
        self,
        delay_ms: int = 4,
        env: Mapping[str, str] | None = None,
        first_key_pause_ms: int = WTYPE_FIRST_KEY_PAUSE_MS,
    ):
        self.env = tool_env(env)
        require_tools(self.env, "wtype")
        require_session(self.env, "WAYLAND_DISPLAY", "wtype")
        self.delay_ms = delay_ms
        self.pause_ms = first_key_pause_ms

    def type(self, backspaces: int, text: str) -> None:
        for argv in wtype_calls(backspaces, text, self.delay_ms, self.pause_ms):
            run_tool(argv, self.env)

    def press(self, chord: str) -> None:
        modifiers, key = parse_chord(chord)
        argv = ["wtype", "-s", str(self.pause_ms)] if self.pause_ms else ["wtype"]
        for modifier in modifiers:
            argv += ["-M", modifier]
        argv += ["-k", key]
        for modifier in reversed(modifiers):
            argv += ["-m", modifier]
        run_tool(argv, self.env)


# --- clipboard -----------------------------------------------------------------------

# Types a clipboard may hold, best first for putting it back: text in UTF-8 when offered.
PREFERRED_TYPES = ("text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "STRING")
# X11 selection targets that describe a selection rather than hold its content.
META_TARGETS = {"TARGETS", "MULTIPLE", "TIMESTAMP", "SAVE_TARGETS", "DELETE", "INSERT_SELECTION", "INSERT_PROPERTY"}


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


class WaylandClipboard:
    keys = WtypeSink
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
                    "another program (a clipboard manager?) took the text off the clipboard before the paste: use sink=wtype or sink=xdotool"
                )
            self.keys.press(self.chord)
            if not offer.wait_ended(self.paste_timeout_s):
                raise SinkError(
                    f"the focused app did not paste within {self.paste_timeout_s:g} s of {self.chord}: set the app's paste key as paste_chord (terminals use ctrl+shift+v)"
                )
        finally:
            try:
                self.clipboard.restore(saved, offer)
            finally:
                offer.close()


# --- uinput: a kernel virtual keyboard -----------------------------------------------


class UinputSink:
    """Presses keys on a virtual keyboard the kernel creates, as the user's layout needs."""

    name = "uinput"

    def __init__(
        self,
        layout: str = "auto",
        delay_ms: int = 4,
        paste_chord: str = "ctrl+v",
        env: Mapping[str, str] | None = None,
        device: str = UINPUT,
    ):
        if uinput_problem(device):
            raise SinkUnavailable(uinput_problem(device))
        self.layout = layouts.system_layout() if layout == "auto" else layout
        try:
            self.table = layouts.strokes_table(self.layout)
        except layouts.UnknownLayout as error:
            raise SinkUnavailable(str(error)) from None
        import evdev

        codes = {code for modifiers, code in self.table.values()} | {
            layouts.KEY_BACKSPACE,
            layouts.KEY_LEFTSHIFT,
            layouts.KEY_RIGHTALT,
        }
        try:
            self.keyboard = evdev.UInput({evdev.ecodes.EV_KEY: sorted(codes)}, name="voxkey", devnode=device)
        except (OSError, evdev.UInputError) as error:
            raise SinkUnavailable(
                f"cannot create a virtual keyboard on {device} ({error}): see voxkey doctor"
            ) from None
        self.ecodes = evdev.ecodes
        self.delay_s = delay_ms / 1000
        self.env = tool_env(env)
        self.paste_chord = paste_chord
        self._paster = None

    def type(self, backspaces: int, text: str) -> None:
        self._press([((), layouts.KEY_BACKSPACE)] * backspaces)
        for typeable, run in layouts.runs(text, self.table):
            if typeable:
                for piece in pieces(run):  # a cancel is taken between pieces
                    self._press(layouts.strokes_for(piece, self.table))
            else:
                self._paste(run)

    def _press(self, strokes: list) -> None:
        for modifiers, code in strokes:
            for key, value in [
                *((m, 1) for m in modifiers),
                (code, 1),
                (code, 0),
                *((m, 0) for m in reversed(modifiers)),
            ]:
                self.keyboard.write(self.ecodes.EV_KEY, key, value)
                self.keyboard.syn()
            time.sleep(self.delay_s)

    def _paste(self, run: str) -> None:
        if self._paster is None:
            try:
                self._paster = ClipboardSink(self.paste_chord, delay_ms=int(self.delay_s * 1000), env=self.env)
            except SinkUnavailable as why:
                raise SinkError(
                    f"the {self.layout} keyboard layout has no key for {run!r}, and it cannot be pasted ({why})"
                ) from None
        self._paster.type(0, run)
