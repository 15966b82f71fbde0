"""What each key of a keyboard layout types, for stages/keys/layouts.py.

Key codes are Linux's (linux/input-event-codes.h). Each layout lists, row by row, what
every key types alone, with Shift, with AltGr and with Shift+AltGr. "□" marks nothing
usable; a combining accent (DEAD_ACUTE...) marks a dead key, which types nothing by
itself and accents the next key. Every entry is checked against the XKB symbols of this
machine (tests/test_uinput.py), not copied from a picture of a keyboard.

LAYOUTS holds what every computer set to the layout types the same (what its keycaps
show: Windows and Linux agree on them). XKB_ONLY holds what only XKB's layouts add,
that is Linux (the console, every Wayland compositor and X server): the uinput sink,
which types into this machine, uses both; the hid sink, whose host may be any computer,
LAYOUTS alone. Where the two disagree the key is left out of LAYOUTS: AltGr+é types "~"
on a French Linux but is a dead tilde on Windows, and AltGr+5 types "½" on a Spanish
Linux but "€" on Windows. XKB_ONLY lists what dictation in the layout's language needs
and its neighbours' (their quotation marks, dashes and letters), not every symbol XKB puts
on AltGr.
"""

DEAD_GRAVE, DEAD_ACUTE, DEAD_CIRCUMFLEX, DEAD_TILDE = "\u0300", "\u0301", "\u0302", "\u0303"
DEAD_DIAERESIS, DEAD_CEDILLA = "\u0308", "\u0327"
DEAD_KEYS = (DEAD_GRAVE, DEAD_ACUTE, DEAD_CIRCUMFLEX, DEAD_TILDE, DEAD_DIAERESIS, DEAD_CEDILLA)
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
LEVELS = ("", "shift", "altgr", "shift+altgr")  # the first level that types a character wins
EMPTY_ROWS = tuple(NOTHING * len(keys) for keys in ROWS)

# layout -> level -> one string per row, one character per key.
LAYOUTS = {
    "us": {
        "": ("`1234567890-=", "qwertyuiop[]", "asdfghjkl;'\\", "□zxcvbnm,./"),
        "shift": ("~!@#$%^&*()_+", "QWERTYUIOP{}", 'ASDFGHJKL:"|', "□ZXCVBNM<>?"),
    },
    "gb": {
        "": ("`1234567890-=", "qwertyuiop[]", "asdfghjkl;'#", "\\zxcvbnm,./"),
        "shift": ('¬!"£$%^&*()_+', "QWERTYUIOP{}", "ASDFGHJKL:@~", "|ZXCVBNM<>?"),
        # AltGr+` is ¦ on Windows, | on Linux: left out.
        "altgr": ("□□□□€□□□□□□□□", "□□□□□□□□□□□□", "□□□□□□□□□□□□", "□□□□□□□□□□□"),
    },
    "de": {
        "": (f"{DEAD_CIRCUMFLEX}1234567890ß{DEAD_ACUTE}", "qwertzuiopü+", "asdfghjklöä#", "<yxcvbnm,.-"),
        "shift": (f'°!"§$%&/()=?{DEAD_GRAVE}', "QWERTZUIOPÜ*", "ASDFGHJKLÖÄ'", ">YXCVBNM;:_"),
        "altgr": ("□□²³□□□{[]}\\□", "@□€□□□□□□□□~", "□□□□□□□□□□□□", "|□□□□□□µ□□□"),
    },
    "fr": {
        "": ("²&é\"'(-è_çà)=", f"azertyuiop{DEAD_CIRCUMFLEX}$", "qsdfghjklmù*", "<wxcvbn,;:!"),
        "shift": ("□1234567890°+", f"AZERTYUIOP{DEAD_DIAERESIS}£", "QSDFGHJKLM%µ", ">WXCVBN?./§"),
        "altgr": ("□□□#{[|□\\□@]}", "□□€□□□□□□□□¤", "□□□□□□□□□□□□", "□□□□□□□□□□□"),
    },
    "es": {
        "": ("º1234567890'¡", f"qwertyuiop{DEAD_GRAVE}+", f"asdfghjklñ{DEAD_ACUTE}ç", "<zxcvbnm,.-"),
        "shift": ('ª!"·$%&/()=?¿', f"QWERTYUIOP{DEAD_CIRCUMFLEX}*", f"ASDFGHJKLÑ{DEAD_DIAERESIS}Ç", ">ZXCVBNM;:_"),
        "altgr": ("\\|@#□□¬□□□□□□", "□□€□□□□□□□[]", "□□□□□□□□□□{}", "□□□□□□□□□□□"),
    },
    "it": {
        "": ("\\1234567890'ì", "qwertyuiopè+", "asdfghjklòàù", "<zxcvbnm,.-"),
        "shift": ('|!"£$%&/()=?^', "QWERTYUIOPé*", "ASDFGHJKLç°§", ">ZXCVBNM;:_"),
        "altgr": ("□□□□□□□□□□□□□", "□□€□□□□□□□[]", "□□□□□□□□□@#□", "□□□□□□□□□□□"),
        "shift+altgr": ("□□□□□□□□□□□□□", "□□□□□□□□□□{}", "□□□□□□□□□□□□", "□□□□□□□□□□□"),
    },
}

# What XKB's layout of the same name adds, in the same form.
XKB_ONLY = {
    "gb": {"shift+altgr": (*EMPTY_ROWS[:3], "¦□□□□□□□□□□")},
    "de": {
        # Dead diaeresis and cedilla for French words: ë, ï, ç.
        "altgr": (f"□□□□□□□□□□□□{DEAD_CEDILLA}", f"□□□□□□□□□□{DEAD_DIAERESIS}□", "æ□□□□□□□□□□’", "□»«□„“”□□…–"),
        "shift+altgr": ("□¡□□□□□□□□□¿□", EMPTY_ROWS[1], "Æ□□□□□□□□□□□", "□›‹□‚‘’□□□—"),
    },
    "fr": {
        # Dead acute and grave make the capitals É È À Ù; "~ ` ^" are typed, not dead.
        "altgr": ("□□~□□□□`□^□□□", "æ«□□□□□□□□□□", f"@ß□□□□□□□□□{DEAD_GRAVE}", f"□□»□„“”{DEAD_ACUTE}□□□"),
        "shift+altgr": ("□¡□□□□□□□□□¿□", "Æ□□□□□□□□□□□", EMPTY_ROWS[2], "□□□□‚‘’□□□□"),
    },
    "es": {
        "altgr": ("□□□□~□□□□□□□□", EMPTY_ROWS[1], "æß□□□□□□□□□□", "□«»□„“”□□□□"),
        "shift+altgr": (*EMPTY_ROWS[:2], "Æ□□□□□□□□□□□", "□□□□‚‘’□□□□"),
    },
    "it": {
        # Dead grave and acute make the capitals À È É Ì Ò Ù, which no key types.
        "altgr": ("□□□□□□□□□□□`~", EMPTY_ROWS[1], f"æß□□□□□□□□□{DEAD_GRAVE}", f"«□»□“”ñ□{DEAD_ACUTE}□□"),
        "shift+altgr": (
            f"□¡□□□□□□□□□¿{DEAD_CIRCUMFLEX}",
            EMPTY_ROWS[1],
            f"Æ□□□□□□□□{DEAD_CEDILLA}□□",
            f"□□□□‘’Ñ□□{DEAD_DIAERESIS}□",
        ),
    },
}

# A dead key followed by Space types the accent alone where XKB's Compose table says so
# (/usr/share/X11/locale/en_US.UTF-8/Compose). It does not for the acute and the
# diaeresis: there Space gives "'" and '"', and ´ ¨ are the dead key pressed twice,
# which on Windows types the accent twice; so ´ and ¨ alone are not typed.
ACCENT_ALONE = {DEAD_GRAVE: "`", DEAD_CIRCUMFLEX: "^", DEAD_TILDE: "~"}
