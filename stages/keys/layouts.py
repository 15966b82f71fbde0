"""Keyboard layouts for the uinput and hid sinks: which key, with which modifiers, types a
character. A kernel virtual keyboard sends key codes, not characters; the desktop turns
them into characters through the user's layout, so the sink must press what that
layout needs: on a German keyboard "z" is the key a US keyboard calls Y.

Key codes are Linux's (linux/input-event-codes.h). Each layout lists, row by row, what
every key types alone, with Shift and with AltGr; "□" marks nothing usable (no
character, or a dead key, which would wait for the next key). A character no key
types is not guessed: `unproducible` reports it, and the sink pastes it instead.
"""

KEY_BACKSPACE, KEY_TAB, KEY_ENTER, KEY_SPACE = 14, 15, 28, 57
KEY_LEFTSHIFT, KEY_RIGHTALT = 42, 100  # AltGr is the right Alt
MODIFIERS = {"shift": (KEY_LEFTSHIFT,), "altgr": (KEY_RIGHTALT,), "": ()}
WHITESPACE = {" ": KEY_SPACE, "\n": KEY_ENTER, "\t": KEY_TAB}
NOTHING = "□"

# The keys of the four character rows, left to right, as the tables below list them:
# grave/1..0/minus/equal; q..p and the two brackets; a..l, semicolon, apostrophe and
# the key left of Return (backslash on ISO boards); the ISO key left of z, z..m,
# comma, dot, slash.
ROWS = (
    (41, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13),
    (16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27),
    (30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 43),
    (86, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53),
)

# layout -> level -> one string per row, one character per key.
LAYOUTS = {
    "us": {
        "": ("`1234567890-=", "qwertyuiop[]", "asdfghjkl;'\\", "□zxcvbnm,./"),
        "shift": ("~!@#$%^&*()_+", "QWERTYUIOP{}", 'ASDFGHJKL:"|', "□ZXCVBNM<>?"),
    },
    "gb": {
        "": ("`1234567890-=", "qwertyuiop[]", "asdfghjkl;'#", "\\zxcvbnm,./"),
        "shift": ('¬!"£$%^&*()_+', "QWERTYUIOP{}", "ASDFGHJKL:@~", "|ZXCVBNM<>?"),
        "altgr": ("¦□□□€□□□□□□□□", "□□□□□□□□□□□□", "□□□□□□□□□□□□", "□□□□□□□□□□□"),
    },
    "de": {
        "": ("□1234567890ß□", "qwertzuiopü+", "asdfghjklöä#", "<yxcvbnm,.-"),
        "shift": ('°!"§$%&/()=?□', "QWERTZUIOPÜ*", "ASDFGHJKLÖÄ'", ">YXCVBNM;:_"),
        "altgr": ("□□²³□□□{[]}\\□", "@□€□□□□□□□□~", "□□□□□□□□□□□□", "|□□□□□□µ□□□"),
    },
    "fr": {
        "": ("²&é\"'(-è_çà)=", "azertyuiop□$", "qsdfghjklmù*", "<wxcvbn,;:!"),
        "shift": ("□1234567890°+", "AZERTYUIOP□£", "QSDFGHJKLM%µ", ">WXCVBN?./§"),
        "altgr": ("□□□#{[|□\\□@]}", "□□€□□□□□□□□¤", "□□□□□□□□□□□□", "□□□□□□□□□□□"),
    },
}
SUPPORTED = ", ".join(LAYOUTS)

Stroke = tuple[tuple[int, ...], int]  # (modifier keys held, key pressed)


class UnknownLayout(ValueError):
    pass


def strokes_table(layout: str) -> dict[str, Stroke]:
    """Every character the layout types, with the simplest stroke that types it."""
    if layout not in LAYOUTS:
        raise UnknownLayout(f"keyboard layout {layout!r} is not known to the uinput sink: use one of {SUPPORTED}")
    table: dict[str, Stroke] = {char: ((), code) for char, code in WHITESPACE.items()}
    for level in ("", "shift", "altgr"):  # the first level that types a character wins
        for row, keys in zip(LAYOUTS[layout].get(level, ()), ROWS):
            assert len(row) == len(keys), (
                f"{layout} {level or 'plain'} row {row!r} has {len(row)} keys, not {len(keys)}"
            )
            for char, code in zip(row, keys):
                if char != NOTHING:
                    table.setdefault(char, (MODIFIERS[level], code))
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


def strokes_for(text: str, table: dict[str, Stroke]) -> list[Stroke]:
    """The strokes that type `text`; every character must be in the table."""
    return [table[char] for char in text]


def unproducible(text: str, table: dict[str, Stroke]) -> str:
    """The characters of `text` no key of the layout types, each once, in order."""
    return "".join(dict.fromkeys(char for char in text if char not in table))


def runs(text: str, table: dict[str, Stroke]) -> list[tuple[bool, str]]:
    """`text` cut into (typeable, run) pieces: runs the layout types, and runs it cannot."""
    pieces: list[tuple[bool, str]] = []
    for char in text:
        typeable = char in table
        if pieces and pieces[-1][0] == typeable:
            pieces[-1] = (typeable, pieces[-1][1] + char)
        else:
            pieces.append((typeable, char))
    return pieces


def system_layout(keyboard_file: str = "/etc/default/keyboard") -> str:
    """The console and desktop layout Debian and Raspberry Pi OS configure (XKBLAYOUT,
    the first if several); "us" if none is set."""
    try:
        lines = open(keyboard_file, encoding="utf-8").read().splitlines()
    except OSError:
        return "us"
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == "XKBLAYOUT":
            return value.strip().strip("\"'").split(",")[0] or "us"
    return "us"
