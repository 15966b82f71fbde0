"""The uinput sink. No kernel uinput device exists on this machine, so the virtual
keyboard itself is not exercised here: the layouts are tested as pure functions against
the Linux key codes (linux/input-event-codes.h) and against what XKB on this machine
(its keymaps and Compose table, read by tests/usb_host.py) types for the sink's key
events, and the sink on what it says when the device is missing, not writable, or
present but without a kernel module behind it."""

import os

import pytest
from test_typing_languages import NEEDS, SENTENCES
from usb_host import linux_typed

from stages.keys import layouts
from stages.keys.choice import choose_sink, open_sink
from stages.keys.layouts import KEY_ENTER, KEY_SPACE
from stages.keys.layouts import KEY_LEFTSHIFT as SHIFT
from stages.keys.layouts import KEY_RIGHTALT as ALTGR
from stages.keys.sinks import SinkUnavailable
from stages.keys.uinput import UinputSink, key_events

# Linux key codes, as the kernel numbers them.
KEY = {
    "0": 11,
    "1": 2,
    "2": 3,
    "3": 4,
    "4": 5,
    "7": 8,
    "e": 18,
    "q": 16,
    "y": 21,
    "z": 44,
    "a": 30,
    "m": 50,
    "h": 35,
    "l": 38,
    "o": 24,
    "w": 17,
    "r": 19,
    "d": 32,
    "comma": 51,
    "slash": 53,
    "apostrophe": 40,
    "semicolon": 39,
    "leftbrace": 26,
    "minus": 12,
    "equal": 13,
    "grave": 41,
    "rightbrace": 27,
    "backslash": 43,
    "102nd": 86,
    "u": 22,
    "c": 46,
    "n": 49,
    "v": 47,
    "b": 48,
}


def strokes(text: str, layout: str):
    return layouts.strokes_for(text, layouts.strokes_table(layout))


def test_us_types_text_with_shift_where_the_keyboard_needs_it():
    assert strokes("Hello, World!\n", "us") == [
        ((SHIFT,), KEY["h"]),
        ((), KEY["e"]),
        ((), KEY["l"]),
        ((), KEY["l"]),
        ((), KEY["o"]),
        ((), KEY["comma"]),
        ((), KEY_SPACE),
        ((SHIFT,), KEY["w"]),
        ((), KEY["o"]),
        ((), KEY["r"]),
        ((), KEY["l"]),
        ((), KEY["d"]),
        ((SHIFT,), KEY["1"]),
        ((), KEY_ENTER),
    ]


def test_the_same_character_is_a_different_key_on_each_layout():
    assert strokes("@", "us") == [((SHIFT,), KEY["2"])]
    assert strokes("@", "gb") == [((SHIFT,), KEY["apostrophe"])]
    assert strokes("@", "de") == [((ALTGR,), KEY["q"])]
    assert strokes("@", "fr") == [((ALTGR,), KEY["0"])]  # AltGr+à
    assert strokes('"', "gb") == [((SHIFT,), KEY["2"])]
    assert strokes("#", "gb") == [((), KEY["backslash"])]


def test_german_swaps_y_and_z_and_types_umlauts_and_the_euro():
    assert strokes("zy", "de") == [((), KEY["y"]), ((), KEY["z"])]
    assert strokes("äöüß€", "de") == [
        ((), KEY["apostrophe"]),
        ((), KEY["semicolon"]),
        ((), KEY["leftbrace"]),
        ((), KEY["minus"]),
        ((ALTGR,), KEY["e"]),
    ]
    assert strokes("{", "de") == [((ALTGR,), KEY["7"])]


def test_french_azerty_keys_and_digits_with_shift():
    assert strokes("aq", "fr") == [((), KEY["q"]), ((), KEY["a"])]
    assert strokes("1", "fr") == [((SHIFT,), KEY["1"])]
    assert strokes("é", "fr") == [((), KEY["2"])]
    assert strokes("m,", "fr") == [((), KEY["semicolon"]), ((), KEY["m"])]
    assert strokes("w", "fr") == [((), KEY["z"])]


def test_what_no_key_types_is_reported_not_guessed():
    assert layouts.unproducible("café ✓", layouts.strokes_table("us")) == "é✓"
    assert layouts.unproducible("café ✓ ê", layouts.strokes_table("fr")) == "✓"  # ê: the dead ^ key, then e
    assert layouts.cannot_type("^`´¨", "de") == "´¨"  # a dead key and Space type ^ and `, not ´ or ¨
    assert layouts.runs("ab✓✓c", layouts.strokes_table("us")) == [(True, "ab"), (False, "✓✓"), (True, "c")]


def test_every_layout_row_has_one_character_per_key():
    for layout in layouts.LAYOUTS:
        table = layouts.strokes_table(layout)  # raises on a row of the wrong length
        assert all(char in table for char in "abcdefghijklmnopqrstuvwxyz0123456789 .,\n")


# --- dead keys and the languages of dictation ------------------------------------------------


@pytest.mark.parametrize(
    "layout, text, expected",
    [
        ("de", "é", [((), KEY["equal"]), ((), KEY["e"])]),  # dead acute, then e
        ("de", "È", [((SHIFT,), KEY["equal"]), ((SHIFT,), KEY["e"])]),  # dead grave is Shift+´
        ("de", "^", [((), KEY["grave"]), ((), KEY_SPACE)]),  # the dead ^ alone: then Space
        ("de", "„“", [((ALTGR,), KEY["v"]), ((ALTGR,), KEY["b"])]),
        ("fr", "ê", [((), KEY["leftbrace"]), ((), KEY["e"])]),
        ("fr", "Ë", [((SHIFT,), KEY["leftbrace"]), ((SHIFT,), KEY["e"])]),  # dead diaeresis, then E
        ("fr", "É", [((ALTGR,), KEY["m"]), ((SHIFT,), KEY["e"])]),  # AltGr+, is XKB's dead acute
        ("fr", "’", [((SHIFT, ALTGR), KEY["n"])]),
        ("es", "á", [((), KEY["apostrophe"]), ((), KEY["a"])]),  # the dead ´ right of ñ, then a
        ("es", "Ú", [((), KEY["apostrophe"]), ((SHIFT,), KEY["u"])]),
        ("es", "ü", [((SHIFT,), KEY["apostrophe"]), ((), KEY["u"])]),
        ("es", "ñ¿¡", [((), KEY["semicolon"]), ((SHIFT,), KEY["equal"]), ((), KEY["equal"])]),
        ("it", "è", [((), KEY["leftbrace"])]),
        ("it", "é", [((SHIFT,), KEY["leftbrace"])]),
        ("it", "È", [((ALTGR,), KEY["backslash"]), ((SHIFT,), KEY["e"])]),  # AltGr+ù is XKB's dead grave
        ("it", "É", [((ALTGR,), KEY["comma"]), ((SHIFT,), KEY["e"])]),
    ],
)
def test_a_character_under_a_dead_key_is_the_dead_key_then_the_letter(layout, text, expected):
    assert strokes(text, layout) == expected


def test_each_stroke_is_its_modifiers_down_its_key_down_and_up_then_its_modifiers_up():
    assert key_events(strokes("Ê", "fr")) == [
        (KEY["leftbrace"], 1),  # the dead ^
        (KEY["leftbrace"], 0),
        (SHIFT, 1),
        (KEY["e"], 1),
        (KEY["e"], 0),
        (SHIFT, 0),
    ]
    assert key_events(strokes("’", "fr")) == [
        (SHIFT, 1),
        (ALTGR, 1),
        (KEY["n"], 1),
        (KEY["n"], 0),
        (ALTGR, 0),
        (SHIFT, 0),
    ]


@pytest.mark.parametrize("xkb", [True, False], ids=["uinput", "every-host"])
@pytest.mark.parametrize("layout", list(layouts.LAYOUTS))
def test_every_character_of_a_layout_is_what_xkb_types_for_its_key_events(layout, xkb):
    """Each character of the tables, typed alone, against XKB's own keymap of the layout
    and its Compose table: so every key position and dead key is XKB's, not a guess."""
    table = layouts.strokes_table(layout, xkb)
    wrong = {}
    for char, typing in table.items():
        got = linux_typed(key_events(list(typing)), layout)
        if got != char:
            wrong[char] = got
    assert not wrong


# What German, French, Spanish and Italian need, and what each layout cannot type of it on Linux.
NEEDED = "".join(dict.fromkeys("".join(NEEDS.values())))
CANNOT_TYPE = {
    "us": NEEDED,
    "gb": NEEDED,
    "de": "œŒñÑ",
    "fr": "ÇœŒñÑ",
    "es": "œŒ",
    "it": "„œŒ",
}
# What each layout cannot type of its own language's sentence (French lacks œ Œ Ç
# even on Linux: the sink pastes them).
OWN_LANGUAGE_CANNOT = {"de": "", "fr": "ÇœŒ", "es": "", "it": ""}


@pytest.mark.parametrize("layout", list(layouts.LAYOUTS))
def test_what_a_layout_cannot_type_of_the_languages_is_named_exactly(layout):
    assert layouts.cannot_type(NEEDED, layout) == CANNOT_TYPE[layout]


@pytest.mark.parametrize("language", list(OWN_LANGUAGE_CANNOT))
def test_a_sentence_on_its_own_layout_is_typed_by_keys_but_what_the_layout_lacks(language):
    """What uinput sends for the sentence, through XKB, is the sentence: each run the
    layout types as keys, each run it lacks left for the clipboard."""
    sentence, table = SENTENCES[language], layouts.strokes_table(language)
    assert layouts.cannot_type(sentence, language) == OWN_LANGUAGE_CANNOT[language]
    for typeable, run in layouts.runs(sentence, table):
        if typeable:
            assert linux_typed(key_events(layouts.strokes_for(run, table)), language) == run
        else:
            assert set(run) <= set(OWN_LANGUAGE_CANNOT[language])


def test_a_variant_without_dead_keys_types_no_accent_through_them(tmp_path):
    settings = tmp_path / "keyboard"
    settings.write_text('XKBLAYOUT="de"\nXKBVARIANT="nodeadkeys"\n')
    assert not layouts.system_has_dead_keys(str(settings))
    settings.write_text('XKBLAYOUT="de"\nXKBVARIANT=""\n')
    assert layouts.system_has_dead_keys(str(settings))
    assert layouts.unproducible("éê^ä", layouts.strokes_table("de", dead_keys=False)) == "éê^"


def test_the_system_layout_comes_from_debian_keyboard_settings(tmp_path):
    settings = tmp_path / "keyboard"
    settings.write_text('XKBMODEL="pc105"\nXKBLAYOUT="de,us"\nXKBVARIANT=""\n')
    assert layouts.system_layout(str(settings)) == "de"
    assert layouts.system_layout(str(tmp_path / "missing")) == "us"
    with pytest.raises(layouts.UnknownLayout, match="use one of us, gb, de, fr, es, it"):
        layouts.strokes_table("dvorak")


def test_without_a_device_the_sink_names_the_fix(tmp_path):
    with pytest.raises(SinkUnavailable) as missing:
        UinputSink(device=str(tmp_path / "uinput"))
    assert (
        str(missing.value)
        == f"{tmp_path / 'uinput'} does not exist: sudo modprobe uinput (and add uinput to /etc/modules to keep it)"
    )
    node = tmp_path / "uinput-node"
    os.mknod(node, 0o600 | 0o020000, os.makedev(10, 223))  # the real device number, without the kernel module
    with pytest.raises(SinkUnavailable) as absent:
        UinputSink(layout="us", device=str(node))
    assert "cannot create a virtual keyboard" in str(absent.value) and "\n" not in str(absent.value)
    with pytest.raises(SinkUnavailable, match="use one of us, gb, de, fr, es, it"):
        UinputSink(layout="dvorak", device=str(node))


def test_auto_picks_uinput_only_where_nothing_else_types():
    everything = lambda tool: f"/usr/bin/{tool}"  # noqa: E731
    nothing = lambda tool: None  # noqa: E731
    assert choose_sink({}, nothing, uinput=lambda: True)[0] == "uinput"
    assert choose_sink({"WAYLAND_DISPLAY": "wayland-0"}, nothing, uinput=lambda: True)[0] == "uinput"
    assert choose_sink({"WAYLAND_DISPLAY": "wayland-0"}, everything, uinput=lambda: True)[0] == "wtype"
    assert choose_sink({}, nothing, uinput=lambda: False)[0] == "stdout"
    with pytest.raises(SinkUnavailable, match="/dev/uinput does not exist|/dev/uinput is not writable"):
        open_sink("uinput")
