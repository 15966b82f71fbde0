"""Keyboard layouts for the uinput and hid sinks: which keys, with which modifiers, type a
character. A kernel virtual keyboard sends key codes, not characters; the desktop turns
them into characters through the user's layout, so the sink must press what that
layout needs: on a German keyboard "z" is the key a US keyboard calls Y.

What each key types is in stages/keys/layout_tables.py. A character no key types may be
a dead key and a letter: "ê" on a French keyboard is the ^ key, then e. One no key
types either way is not guessed: `cannot_type` names it, and the sink pastes it (uinput)
or skips it (hid) instead.
"""

import unicodedata
from collections.abc import Iterator

from stages.keys.layout_tables import ACCENT_ALONE, DEAD_KEYS, LAYOUTS, LEVELS, NOTHING, ROWS, XKB_ONLY

KEY_BACKSPACE, KEY_TAB, KEY_ENTER, KEY_SPACE = 14, 15, 28, 57
KEY_LEFTSHIFT, KEY_RIGHTALT = 42, 100  # AltGr is the right Alt
MODIFIERS = {"": (), "shift": (KEY_LEFTSHIFT,), "altgr": (KEY_RIGHTALT,), "shift+altgr": (KEY_LEFTSHIFT, KEY_RIGHTALT)}
WHITESPACE = {" ": KEY_SPACE, "\n": KEY_ENTER, "\t": KEY_TAB}
SUPPORTED = ", ".join(LAYOUTS)
# The letters a dead key makes: those of Latin-1 that are a letter and one accent (é is
# e and U+0301), which the dead keys of Western layouts make on Windows and Linux alike.
ACCENTED = {
    char: (letters[0], letters[1])
    for char in map(chr, range(0xC0, 0x100))
    if len(letters := unicodedata.normalize("NFD", char)) == 2
}

Stroke = tuple[tuple[int, ...], int]  # (modifier keys held, key pressed)
# The strokes that type one character: one, or a dead key and then the key it accents.
Strokes = tuple[Stroke, ...]


class UnknownLayout(ValueError):
    pass


def keys_of(levels: dict[str, tuple[str, ...]], layout: str) -> Iterator[tuple[str, Stroke]]:
    """(what it types, stroke) for each usable key of a table, level by level."""
    for level in LEVELS:
        rows = levels.get(level)
        if rows is None:
            continue
        where = f"{layout} {level or 'plain'}"
        assert len(rows) == len(ROWS), f"{where} has {len(rows)} rows, not {len(ROWS)}"
        for row, codes in zip(rows, ROWS):
            assert len(row) == len(codes), f"{where} row {row!r} has {len(row)} keys, not {len(codes)}"
            for char, code in zip(row, codes):
                if char != NOTHING:
                    yield char, (MODIFIERS[level], code)


def strokes_table(layout: str, xkb: bool = True, dead_keys: bool = True) -> dict[str, Strokes]:
    """Every character the layout types, with the simplest strokes that type it: one key
    where a key types it, else a dead key and a letter (or Space, for the accent alone).

    `xkb`: the layout as Linux has it, with what XKB adds (layout_tables.XKB_ONLY); else
    only what every computer set to the layout types. `dead_keys`: False for a layout
    variant without them (de(nodeadkeys)...), where those keys are left unused."""
    if layout not in LAYOUTS:
        raise UnknownLayout(f"keyboard layout {layout!r} is not known to the uinput sink: use one of {SUPPORTED}")
    table: dict[str, Strokes] = {char: (((), code),) for char, code in WHITESPACE.items()}
    dead: dict[str, Stroke] = {}  # accent -> its dead key
    tables = (LAYOUTS[layout], XKB_ONLY.get(layout, {})) if xkb else (LAYOUTS[layout],)
    for levels in tables:  # what a key types beats what XKB adds
        for char, stroke in keys_of(levels, layout):
            if char in DEAD_KEYS:
                if dead_keys:
                    dead.setdefault(char, stroke)
            else:
                table.setdefault(char, (stroke,))
    for char, (letter, accent) in ACCENTED.items():
        if accent in dead and letter in table:
            table.setdefault(char, (dead[accent], *table[letter]))
    for accent, alone in ACCENT_ALONE.items():
        if accent in dead:
            table.setdefault(alone, (dead[accent], ((), KEY_SPACE)))
    return table


def caps_keys(layout: str) -> set[int]:
    """The keys Caps Lock shifts: those whose plain and Shift characters are one
    letter's two cases (a/A, ä/Ä), not keys such as French é/2."""
    levels = LAYOUTS[layout]
    return {
        code
        for plain_row, shift_row, keys in zip(levels[""], levels["shift"], ROWS)
        for plain, shifted, code in zip(plain_row, shift_row, keys)
        if plain != shifted and plain.upper() == shifted
    }


def strokes_for(text: str, table: dict[str, Strokes]) -> list[Stroke]:
    """The strokes that type `text`; every character must be in the table."""
    return [stroke for char in text for stroke in table[char]]


def unproducible(text: str, table: dict[str, Strokes]) -> str:
    """The characters of `text` the table has no strokes for, each once, in order."""
    return "".join(dict.fromkeys(char for char in text if char not in table))


def cannot_type(text: str, layout: str, xkb: bool = True) -> str:
    """The characters of `text` that `layout` cannot type, each once, in order ("" when it
    types all): what the uinput sink (`xkb`) pastes and the hid sink (not `xkb`) skips."""
    return unproducible(text, strokes_table(layout, xkb))


def runs(text: str, table: dict[str, Strokes]) -> list[tuple[bool, str]]:
    """`text` cut into (typeable, run) pieces: runs the layout types, and runs it cannot."""
    pieces: list[tuple[bool, str]] = []
    for char in text:
        typeable = char in table
        if pieces and pieces[-1][0] == typeable:
            pieces[-1] = (typeable, pieces[-1][1] + char)
        else:
            pieces.append((typeable, char))
    return pieces


def keyboard_setting(name: str, keyboard_file: str) -> str:
    """The first value of a setting of Debian's keyboard file (XKBLAYOUT="de,us" -> de)."""
    try:
        lines = open(keyboard_file, encoding="utf-8").read().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip().strip("\"'").split(",")[0]
    return ""


def system_layout(keyboard_file: str = "/etc/default/keyboard") -> str:
    """The console and desktop layout Debian and Raspberry Pi OS configure (XKBLAYOUT,
    the first if several); "us" if none is set."""
    return keyboard_setting("XKBLAYOUT", keyboard_file) or "us"


def system_has_dead_keys(keyboard_file: str = "/etc/default/keyboard") -> bool:
    """False for the XKB variants whose accent keys type the accent at once (XKBVARIANT
    nodeadkeys: the de, es and fr ones)."""
    return "nodeadkeys" not in keyboard_setting("XKBVARIANT", keyboard_file)
