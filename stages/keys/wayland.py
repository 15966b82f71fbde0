"""The `wayland` sink: types into the focused Wayland window through one virtual
keyboard that keys holds open (stages/keys/virtual_keyboard.py).

Needs a Wayland session (WAYLAND_DISPLAY) whose compositor offers the virtual-keyboard
protocol: the wlroots ones (labwc, sway, Hyprland, river), not GNOME or KDE. Types any
Unicode character, whatever the user's keyboard layout: the keyboard's keymap holds
exactly the characters being typed, one key each, uploaded with each text (see
`_send`: a compositor may replace it). The keys of a text go out as press/release pairs
without waiting on the compositor between them (wtype waits two round trips per key
and pays a new keyboard, a new keymap and a pause per call); one round trip at the end
says they were all handed over, and one every SYNC_EVERY keys keeps the socket from
filling. Because the keymap is in place before the first key, the first key is never
lost, as it can be with a keyboard made for one call.

The keymap is this keyboard's alone: a compositor sends an app the keymap of the
keyboard each key comes from, so the user's own keyboard keeps its layout.
"""

import os
import unicodedata
from collections.abc import Mapping

from xkbcommon import xkb

from stages.keys.sinks import TOOL_TIMEOUT_S, SinkError, SinkUnavailable, parse_chord, require_session
from stages.keys.virtual_keyboard import (
    NoVirtualKeyboard,
    VirtualKeyboard,
    WaylandError,
    compositor_offers_virtual_keyboard,
    display_path,
)

# Evdev codes 1..247 are XKB keycodes 9..255, the range X11 apps (XWayland) can see.
CAPACITY = 247
# Keys sent before waiting for the compositor: 2 events of 20 bytes each, so ~10 KB,
# far below what a socket buffers (a full one would break the connection).
SYNC_EVERY = 256
NAMED_KEYS = {"\n": "Return", "\t": "Tab"}
# The core modifiers every XKB keymap has, as bits of a modifiers request.
MODIFIER_MASKS = {"shift": 1 << 0, "ctrl": 1 << 2}


def symbol_of(char: str) -> str:
    """The keysym name that types `char`: U+XXXX for a character (xkbcommon reads
    U0061 as the keysym `a`, and any other as its Unicode keysym), or a key's name."""
    if char in NAMED_KEYS:
        return NAMED_KEYS[char]
    if unicodedata.category(char) in ("Cc", "Cs"):
        raise SinkError(f"cannot type the control character U+{ord(char):04X}: it is no key's character")
    return f"U{ord(char):04X}"


def keymap_text(symbols: tuple[str, ...]) -> str:
    """An XKB keymap with one key per symbol, evdev code i+1 for symbols[i], one level
    each: no modifier changes what a key types. Pure."""
    codes = "".join(f"    <K{code}> = {code + 8};\n" for code in range(1, len(symbols) + 1))
    keys = "".join(f"    key <K{code}> {{ [ {symbol} ] }};\n" for code, symbol in enumerate(symbols, 1))
    return (
        "xkb_keymap {\n"
        f'  xkb_keycodes "voxkey" {{\n    minimum = 8;\n    maximum = {max(len(symbols) + 8, 9)};\n{codes}  }};\n'
        '  xkb_types "voxkey" {\n    type "ONE_LEVEL" { modifiers = none; level_name[Level1] = "Any"; };\n  };\n'
        '  xkb_compatibility "voxkey" { };\n'
        f'  xkb_symbols "voxkey" {{\n{keys}  }};\n'
        "};\n"
    )


def keymap_runs(keys: list[str], capacity: int = CAPACITY) -> list[tuple[tuple[str, ...], list[str]]]:
    """`keys` (symbols) as runs, each typed under a keymap of its own: (the keymap's
    symbols, the run's keys). A keymap holds the distinct symbols of the keys from its
    run on, as many as fit; most texts are one run. Pure."""
    runs = []
    start = 0
    while start < len(keys):
        symbols = tuple(dict.fromkeys(keys[start:]))[:capacity]
        held = set(symbols)
        end = next((at for at in range(start, len(keys)) if keys[at] not in held), len(keys))
        runs.append((symbols, keys[start:end]))
        start = end
    return runs


def compiled(symbols: tuple[str, ...]) -> str:
    """The keymap for `symbols` as xkbcommon compiles it: checked here, so a keymap the
    compositor would refuse (and then type nothing with) is an error before any key."""
    try:
        return xkb.Context().keymap_new_from_string(keymap_text(symbols)).get_as_string()
    except xkb.XKBError as error:
        raise SinkError(f"xkbcommon refused the keymap for {len(symbols)} keys: {error}") from None


class WaylandSink:
    """Types through one virtual keyboard, opened here and kept until `close()`."""

    name = "wayland"

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = TOOL_TIMEOUT_S):
        env = os.environ if env is None else env
        require_session(env, "WAYLAND_DISPLAY", "wayland")
        self.path = display_path(env)
        self.timeout_s = timeout_s
        self.keyboard: VirtualKeyboard | None = self._connect(SinkUnavailable)

    def _connect(self, error: type[SinkError]) -> VirtualKeyboard:
        try:
            return VirtualKeyboard(self.path, self.timeout_s)
        except NoVirtualKeyboard as missing:
            raise error(
                f"{missing}: GNOME and KDE lack it; use a wlroots compositor (labwc, sway), "
                "or sink=uinput, or sink=xdotool for XWayland windows"
            ) from None
        except WaylandError as failed:
            raise error(f"{failed}: is the compositor running and WAYLAND_DISPLAY right?") from None

    def type(self, backspaces: int, text: str) -> None:
        self._send(["BackSpace"] * backspaces + [symbol_of(char) for char in text])

    def press(self, chord: str) -> None:
        modifiers, key = parse_chord(chord)
        mask = sum(MODIFIER_MASKS[modifier] for modifier in modifiers)
        self._send([symbol_of(key) if len(key) == 1 else key], modifiers=mask)

    def _send(self, keys: list[str], modifiers: int = 0) -> None:
        if self.keyboard is None:  # the connection broke last time: a compositor restarted
            self.keyboard = self._connect(SinkError)
        try:
            # Each call uploads its keymap, even one the keyboard had: a compositor may
            # put its own keymap on every keyboard when its configuration is reloaded
            # (sway does), and a key typed with that one is the wrong character.
            for symbols, run in keymap_runs(keys):
                self.keyboard.upload_keymap(compiled(symbols))
                code = {symbol: index for index, symbol in enumerate(symbols, 1)}
                if modifiers:
                    self.keyboard.hold_modifiers(modifiers)
                for count, symbol in enumerate(run, 1):
                    self.keyboard.tap(code[symbol])
                    if count % SYNC_EVERY == 0:
                        self.keyboard.sync()
                if modifiers:
                    self.keyboard.hold_modifiers(0)
            self.keyboard.sync()
        except WaylandError as failed:
            self.close()
            raise SinkError(f"{failed}: the keys may not all have arrived") from None

    def close(self) -> None:
        if self.keyboard is not None:
            keyboard, self.keyboard = self.keyboard, None
            try:
                keyboard.close()
            except (WaylandError, RuntimeError):
                pass  # a connection already gone


def offers_virtual_keyboard(env: Mapping[str, str]) -> bool:
    """Whether the Wayland compositor that `env` names offers the virtual-keyboard protocol."""
    return bool(env.get("WAYLAND_DISPLAY")) and compositor_offers_virtual_keyboard(display_path(env), timeout_s=2.0)
