"""A stand-in for the computer at the other end of the USB cable: it turns boot-keyboard
input reports back into text, as a host with a given keyboard layout would.

It knows the keys by their HID usages, written here from the HID Usage Tables
(Keyboard/Keypad page 0x07) row by row, not from the sink's own table, and what each
key types from the layout tables the sink uses (stages/keys/layouts.py). What a dead
key and the next key make is XKB's Compose table on this machine, as on a Linux host.

`linux_typed` is a Linux desktop reading key events (the uinput sink's, or a USB host's
once its kernel has turned usages into key codes): XKB's own keymap of the layout and
its Compose table, nothing from voxkey's tables."""

import functools
from pathlib import Path

from xkbcommon import xkb

from stages.keys.layouts import LAYOUTS, NOTHING

# The Compose table of the UTF-8 locales of the layouts' countries (de_DE.UTF-8,
# fr_FR.UTF-8...: /usr/share/X11/locale/compose.dir).
COMPOSE_FILE = "/usr/share/X11/locale/en_US.UTF-8/Compose"
COMPOSED, CANCELLED, NOT_COMPOSING = (
    xkb.ComposeStatus.XKB_COMPOSE_COMPOSED,
    xkb.ComposeStatus.XKB_COMPOSE_CANCELLED,
    xkb.ComposeStatus.XKB_COMPOSE_NOTHING,
)
# The dead keys' keysyms (xkbcommon-keysyms.h), by the accent the layout tables mark them with.
DEAD_KEYSYMS = {
    "\u0300": "dead_grave",
    "\u0301": "dead_acute",
    "\u0302": "dead_circumflex",
    "\u0303": "dead_tilde",
    "\u0308": "dead_diaeresis",
    "\u0327": "dead_cedilla",
}

# The four character rows of a keyboard, left to right, as stages/keys/layouts.py lists them,
# named by their usages: ` 1..0 - =; Q..P [ ]; A..L ; ' and the key left of Return;
# the ISO key left of Z, Z..M , . /
ROW_USAGES = (
    (0x35, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2D, 0x2E),
    (0x14, 0x1A, 0x08, 0x15, 0x17, 0x1C, 0x18, 0x0C, 0x12, 0x13, 0x2F, 0x30),
    (0x04, 0x16, 0x07, 0x09, 0x0A, 0x0B, 0x0D, 0x0E, 0x0F, 0x33, 0x34, 0x31),
    (0x64, 0x1D, 0x1B, 0x06, 0x19, 0x05, 0x11, 0x10, 0x36, 0x37, 0x38),
)
ENTER, BACKSPACE, TAB, SPACE = 0x28, 0x2A, 0x2B, 0x2C
SHIFTS, ALTGR = 0x02 | 0x20, 0x40  # left or right Shift; right Alt


def split(data: bytes) -> list[bytes]:
    assert len(data) % 8 == 0, f"{len(data)} bytes is not a whole number of 8-byte reports"
    return [data[start : start + 8] for start in range(0, len(data), 8)]


def typed(reports: list[bytes], layout: str, caps_lock: bool = False) -> str:
    """The text a host with `layout` (and Caps Lock as given) reads from `reports`.
    Every press must be released before the next (no key held across characters)."""
    levels = LAYOUTS[layout]
    text, held, dead = "", False, []  # dead: the dead keys waiting for the next key
    for report in reports:
        modifiers, reserved, usage, *rest = report
        assert reserved == 0 and not any(rest), f"not a one-key boot report: {report.hex()}"
        if usage == 0:
            assert modifiers == 0, f"a modifier left held: {report.hex()}"
            held = False
            continue
        assert not held, f"a key pressed before the last was released: {report.hex()}"
        held = True
        if usage == BACKSPACE:
            text = text[:-1]
            continue
        char = {ENTER: "\n", TAB: "\t", SPACE: " "}.get(usage) or character(levels, modifiers, usage, caps_lock)
        assert char != NOTHING, f"{report.hex()} types nothing on {layout}"
        if char in DEAD_KEYSYMS:
            dead.append(xkb.keysym_from_name(DEAD_KEYSYMS[char]))
        elif dead:
            text += composed([*dead, xkb.keysym_from_name("space" if char == " " else char)])
            dead = []
        else:
            text += char
    return text


def character(levels: dict, modifiers: int, usage: int, caps_lock: bool) -> str:
    """What the key of `usage` types with `modifiers` under a layout's levels."""
    row, column = next((r, usages.index(usage)) for r, usages in enumerate(ROW_USAGES) if usage in usages)
    plain, shifted = levels[""][row][column], levels["shift"][row][column]
    shift = bool(modifiers & SHIFTS)
    if caps_lock and not modifiers & ALTGR and plain != shifted and plain.upper() == shifted:
        shift = not shift  # Caps Lock shifts letters; Shift undoes it (Windows, Linux)
    assert modifiers & ~(SHIFTS | ALTGR) == 0, f"an unexpected modifier: {modifiers:02x}"
    level = "+".join(name for name, held in (("shift", shift), ("altgr", modifiers & ALTGR)) if held)
    return levels[level][row][column] if level in levels else NOTHING


# --- a Linux desktop: XKB ----------------------------------------------------------------


@functools.cache
def compose_table() -> xkb.ComposeTable:
    return xkb.Context().compose_table_new_from_buffer(Path(COMPOSE_FILE).read_bytes(), "en_US.UTF-8")


def composed(keysyms: list[int]) -> str:
    """What a dead key (or two) and the key after it type."""
    state = compose_table().compose_state_new()
    for keysym in keysyms:
        state.feed(keysym)
    names = [xkb.keysym_get_name(keysym) for keysym in keysyms]
    assert state.get_status() == COMPOSED, f"{names} compose nothing"
    return state.get_utf8()


def linux_typed(events: list[tuple[int, int]], layout: str) -> str:
    """The text a Linux desktop with XKB's `layout` reads from key events: (Linux key
    code, 1 for down, 0 for up)."""
    keymap = xkb.Context().keymap_new_from_names(rules="evdev", model="pc105", layout=layout)
    state, compose = keymap.state_new(), compose_table().compose_state_new()
    text = ""
    for code, down in events:
        key = code + 8  # XKB numbers keys 8 above Linux
        if down:
            keysym = state.key_get_one_sym(key)
            if compose.feed(keysym) == xkb.ComposeFeedResult.XKB_COMPOSE_FEED_ACCEPTED:
                status = compose.get_status()
                assert status != CANCELLED, f"{xkb.keysym_get_name(keysym)} after a dead key composes nothing"
                if status == COMPOSED:
                    text += compose.get_utf8()
                elif status == NOT_COMPOSING:
                    text += "\n" if xkb.keysym_get_name(keysym) == "Return" else state.key_get_string(key)
        state.update_key(key, xkb.KeyDirection.XKB_KEY_DOWN if down else xkb.KeyDirection.XKB_KEY_UP)
    return text
