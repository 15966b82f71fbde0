"""The `wtype` sink: types into the focused Wayland window through the virtual-keyboard
protocol.

Needs a Wayland session (WAYLAND_DISPLAY) whose compositor offers that protocol: the
wlroots ones (sway, labwc, Hyprland, river), not GNOME or KDE. Types any Unicode
character, whatever the user's keyboard layout.
"""

from collections.abc import Mapping

from stages.keys.sinks import PIECE, parse_chord, require_session, require_tools, run_tool, tool_env

# wtype uploads a new keymap on every call, and a key that reaches the focused app
# before the app has applied that keymap is lost. Measured into foot under headless
# sway: without a pause, the first key of a call was lost in at least 18 of 60 calls
# (3 of 60 with both cores busy); with a pause of 25, 50 or 100 ms, in none of 100 or
# more calls each, idle or busy. 100 ms keeps a margin for slower machines.
WTYPE_FIRST_KEY_PAUSE_MS = 100


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
