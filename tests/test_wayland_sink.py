"""The wayland sink: one virtual keyboard held open, typing into foot under a real
headless sway whose shell writes each line it receives to a file that the test reads
back. Its keymap rules are tested pure as well.

A headless sway has no physical keyboard: the desk's keyboard is another virtual one
with a German layout, open while these tests run, as a user's is. (With none, every new
keyboard makes each app bind a keyboard anew, and keys sent before it has are lost:
`voxkey bench --typing` counts that case, "cold seat".)"""

import random

import pytest
from xkbcommon import xkb

from stages.keys.choice import choose_sink, open_sink
from stages.keys.sinks import SinkError, SinkUnavailable
from stages.keys.virtual_keyboard import VirtualKeyboard
from stages.keys.wayland import CAPACITY, WaylandSink, compiled, keymap_runs, keymap_text, symbol_of

# --- the keymap: pure --------------------------------------------------------------------


def test_each_character_is_one_key_of_its_own_keysym_whatever_the_layout():
    assert [symbol_of(char) for char in "a é\n\t✓😀"] == ["U0061", "U0020", "U00E9", "Return", "Tab", "U2713", "U1F600"]
    with pytest.raises(SinkError, match="control character U\\+0007"):
        symbol_of("\a")
    keymap = xkb.Context().keymap_new_from_string(compiled(("U0061", "U00E9", "U2713", "Return", "BackSpace")))
    state = keymap.state_new()
    # evdev code i+1 is XKB keycode i+9: each key types its one character, nothing else.
    assert [state.key_get_string(code + 8) for code in range(1, 4)] == ["a", "é", "✓"]
    assert state.key_get_one_sym(4 + 8) == xkb.keysym_from_name("Return")
    assert "maximum = 9;" in keymap_text(())  # an empty keymap is still a valid one


def test_a_text_is_one_keymap_of_its_distinct_characters_while_they_fit():
    assert keymap_runs(list("abcab")) == [(("a", "b", "c"), list("abcab"))]
    assert keymap_runs([]) == []
    # Two keys a keymap: a new one where the next key is not in it.
    assert keymap_runs(list("abcab"), capacity=2) == [
        (("a", "b"), ["a", "b"]),
        (("c", "a"), ["c", "a"]),
        (("b",), ["b"]),
    ]


def test_a_text_with_more_distinct_characters_than_keys_changes_keymap_as_it_goes():
    seed = 23
    print(f"seed {seed}")
    rng = random.Random(seed)
    keys = [f"U{0x4E00 + rng.randrange(600):04X}" for _ in range(2000)]
    runs = keymap_runs(keys)
    assert [key for _, run in runs for key in run] == keys  # every key, once, in order
    for symbols, run in runs:
        assert len(symbols) <= CAPACITY and set(run) <= set(symbols)
    assert len(runs) < len(keys) / 50  # keymaps change per run of keys, not per key


# --- into foot under headless sway -------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def desk_keyboard(foot):
    """The user's own keyboard, German."""
    own = VirtualKeyboard(foot.env["WAYLAND_DISPLAY"], timeout_s=10)
    try:
        own.upload_keymap(xkb.Context().keymap_new_from_names(layout="de").get_as_string())
        yield own
    finally:
        own.close()


def test_the_wayland_sink_types_unicode_backspaces_and_return_exactly(foot):
    sink = WaylandSink(env=foot.env)
    try:
        said = "café ✓ ß, naïve — 😀\ttab"
        got = foot.typed(lambda: (sink.type(0, said + " wrong"), sink.type(len(" wrong"), "!\n")))
        assert got == said + "!\n"
    finally:
        sink.close()


def test_the_first_key_of_a_new_keyboard_arrives_in_every_run(foot):
    for run in range(10):
        sink = WaylandSink(env=foot.env)
        try:
            assert foot.typed(lambda run=run, sink=sink: sink.type(0, f"{run} first\n")) == f"{run} first\n"
        finally:
            sink.close()


def test_long_text_with_more_characters_than_a_keymap_holds_is_typed_whole(foot):
    seed = 24
    print(f"seed {seed}")
    rng = random.Random(seed)
    # ~400 distinct: two keymaps at least. Lines of 100: a tty holds at most 4095 bytes a line.
    text = "\n".join("".join(chr(0x4E00 + rng.randrange(400)) for _ in range(100)) for _ in range(15)) + "\n"
    sink = WaylandSink(env=foot.env)
    try:
        assert foot.typed(lambda: sink.type(0, text), lines=15, seconds=60) == text
        assert foot.typed(lambda: sink.type(0, "ascii again\n")) == "ascii again\n"
    finally:
        sink.close()


GERMAN_KEYS = [21, 44, 12, 28]  # evdev KEY_Y, KEY_Z, KEY_MINUS, KEY_ENTER: "z", "y", "ß", Return in German


def test_another_keyboard_keeps_its_own_layout_after_voxkey_typed(foot, desk_keyboard):
    """The user's own keyboard types its layout's characters after voxkey's keyboard
    typed with its own keymap, and voxkey's still types exactly after that: neither
    keymap leaks into the other."""
    sink = WaylandSink(env=foot.env)
    try:
        # voxkey's keymap has keys at the German keys' codes too: 60 distinct characters
        cyrillic = "".join(chr(0x400 + n) for n in range(60))
        assert foot.typed(lambda: sink.type(0, cyrillic + "\n")) == cyrillic + "\n"

        def press_own():
            for key in GERMAN_KEYS:
                desk_keyboard.tap(key)
            desk_keyboard.sync()

        assert foot.typed(press_own) == "zyß\n"
        assert foot.typed(lambda: sink.type(0, "zy ✓\n")) == "zy ✓\n"
    finally:
        sink.close()


def test_auto_prefers_the_held_open_keyboard_where_the_compositor_offers_it(foot):
    env = {**foot.env, "XDG_SESSION_TYPE": "wayland"}
    kind, reason = choose_sink(env)
    assert kind == "wayland" and "virtual-keyboard protocol" in reason
    sink = open_sink("auto", env=env)
    try:
        assert isinstance(sink, WaylandSink)
        assert foot.typed(lambda: sink.type(0, "auto\n")) == "auto\n"
    finally:
        sink.close()
    # Where the compositor cannot be asked, wtype is the fallback.
    kind, _ = choose_sink(env, virtual_keyboard=lambda env: False)
    assert kind == "wtype"


def test_a_display_that_is_not_there_is_a_one_line_error_before_any_key(tmp_path):
    with pytest.raises(SinkUnavailable) as refused:
        WaylandSink(env={"WAYLAND_DISPLAY": str(tmp_path / "wayland-9")})
    message = str(refused.value)
    assert "cannot connect to the Wayland display" in message and "WAYLAND_DISPLAY" in message
    assert "\n" not in message
    with pytest.raises(SinkUnavailable, match="WAYLAND_DISPLAY is not set"):
        WaylandSink(env={})
