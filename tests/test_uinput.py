"""The uinput sink. No kernel uinput device exists on this machine, so the virtual
keyboard itself is not exercised here: the layouts are tested as pure functions against
the Linux key codes (linux/input-event-codes.h), and the sink on what it says when the
device is missing, not writable, or present but without a kernel module behind it."""

import os

import pytest

from stages.keys import layouts
from stages.keys.choice import choose_sink, open_sink
from stages.keys.layouts import KEY_ENTER, KEY_SPACE
from stages.keys.layouts import KEY_LEFTSHIFT as SHIFT
from stages.keys.layouts import KEY_RIGHTALT as ALTGR
from stages.keys.sinks import SinkUnavailable
from stages.keys.uinput import UinputSink

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
    "backslash": 43,
    "102nd": 86,
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
    assert layouts.unproducible("café ✓ ê", layouts.strokes_table("fr")) == "✓ê"  # ê needs a dead key
    assert layouts.unproducible("^`", layouts.strokes_table("de")) == "^`"  # dead keys on a German board
    assert layouts.runs("ab✓✓c", layouts.strokes_table("us")) == [(True, "ab"), (False, "✓✓"), (True, "c")]


def test_every_layout_row_has_one_character_per_key():
    for layout in layouts.LAYOUTS:
        table = layouts.strokes_table(layout)  # raises on a row of the wrong length
        assert all(char in table for char in "abcdefghijklmnopqrstuvwxyz0123456789 .,\n")


def test_the_system_layout_comes_from_debian_keyboard_settings(tmp_path):
    settings = tmp_path / "keyboard"
    settings.write_text('XKBMODEL="pc105"\nXKBLAYOUT="de,us"\nXKBVARIANT=""\n')
    assert layouts.system_layout(str(settings)) == "de"
    assert layouts.system_layout(str(tmp_path / "missing")) == "us"
    with pytest.raises(layouts.UnknownLayout, match="use one of us, gb, de, fr"):
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
    with pytest.raises(SinkUnavailable, match="use one of us, gb, de, fr"):
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
