"""Dictation in German, French, Spanish and Italian: a sentence in each, holding every
letter and quotation mark the language writes beyond ASCII, typed through each sink
into a real app that the test reads back: foot under a headless sway for the wayland,
wtype and clipboard sinks, xterm under Xvfb for xdotool and the clipboard on X11. The
sink is given the text exactly, so exactly that text must arrive.

The uinput and hid sinks press keys of a keyboard layout: their sentences are checked
key by key in tests/test_uinput.py and tests/test_hid.py."""

import subprocess

from test_sinks import xterm  # noqa: F401  (the fixture: an xterm whose input is read back)

from bench.sessions import XTERM_PASTES_ON_CTRL_V
from stages.keys.clipboard import ClipboardSink
from stages.keys.wayland import WaylandSink
from stages.keys.wtype import WtypeSink
from stages.keys.xdotool import RECYCLE_AFTER_S, XdotoolSink, parse_keymap, until_a_keycode_is_free, with_keys

# What each language needs beyond ASCII, each in the sentence below it.
NEEDS = {
    "de": "äöüÄÖÜß„“",
    "fr": "éèêëàâîïôûùçÇœŒæÉÈÀ«»’",
    "es": "áéíóúüñÁÉÍÓÚÑ¿¡",
    "it": "àèéìòùÀÈÉÌÒÙ",
}
SENTENCES = {
    "de": "„Grüße“, sagt das Mädchen: Äpfel, Öl und Übermaß für Köln.",
    "fr": (
        "« Où est l’hôtel ? » Noël, Hélène et Zoé mangent des crêpes à Besançon ; ÇA, c’est l’œuvre "
        "d’Œdipe, ex æquo. À Évian, l’ÈRE de l’île, du maïs et du goût de l’âme."
    ),
    "es": "¿Dónde está el niño? ¡Qué pingüino tan pequeño! Ángel, Érica, Íñigo, Óscar y Úrsula comían algún ÑANDÚ.",
    "it": "Perché è così? Più caffè, però già. È vero: À, É, Ì, Ò e Ù sono maiuscole.",
}
LINES = "".join(sentence + "\n" for sentence in SENTENCES.values())


def test_each_sentence_holds_all_its_language_needs():
    for language, needed in NEEDS.items():
        assert set(needed) <= set(SENTENCES[language]), language


# --- Wayland: foot under a headless sway --------------------------------------------------


def test_the_wayland_sink_types_every_language_exactly(foot):
    sink = WaylandSink(env=foot.env)
    try:
        assert foot.typed(lambda: sink.type(0, LINES), lines=len(SENTENCES)) == LINES
    finally:
        sink.close()


def test_wtype_types_every_language_exactly(foot):
    sink = WtypeSink(delay_ms=1, env=foot.env)
    assert foot.typed(lambda: sink.type(0, LINES), lines=len(SENTENCES), seconds=30) == LINES


def test_the_clipboard_on_wayland_pastes_every_language_exactly(foot):
    foot.copy("before ✓")
    sink = ClipboardSink("ctrl+shift+v", session="wayland", delay_ms=2, env=foot.env)  # foot's paste key
    assert foot.typed(lambda: sink.type(0, LINES), lines=len(SENTENCES)) == LINES
    assert foot.clipboard() == "before ✓"


# --- X11: xterm under Xvfb ----------------------------------------------------------------


def test_xdotool_types_every_language_exactly(xterm):  # noqa: F811
    """The sentences need about 50 characters no US key types, and Xvfb has 18 keycodes
    spare: the sink waits for keycodes to be free rather than leave characters to
    xdotool's own binding, which lost some and typed others in the wrong case."""
    read_back = xterm()
    spare_before = spare_keycodes()
    try:
        XdotoolSink(delay_ms=2).type(0, LINES)
        assert read_back() == LINES + "\n"  # read_back ends the last line itself
    finally:  # the X server is shared: give the other tests its spare keycodes back
        unbind(spare_before - spare_keycodes())


def spare_keycodes() -> set[int]:
    keymap = parse_keymap(subprocess.run(["xmodmap", "-pk"], capture_output=True, text=True, check=True).stdout)
    return {code for code, keysyms in keymap.items() if not keysyms}


def unbind(keycodes: set[int]) -> None:
    if keycodes:
        expressions = [part for code in sorted(keycodes) for part in ("-e", f"keycode {code} =")]
        subprocess.run(["xmodmap", *expressions], check=True)


def test_xdotool_types_up_to_the_first_character_without_a_key_then_waits_for_one():
    keymap = {10: [0x61, 0x41], 11: [0xE9, 0xE9], 12: []}  # a, A; é (bound by the sink); spare
    assert with_keys("aé\naA✓é", keymap) == "aé\naA"
    assert with_keys("✓a", keymap) == ""
    ours = {11: 100.0}
    assert until_a_keycode_is_free(ours, keymap, now=100.5) == RECYCLE_AFTER_S - 0.5
    assert until_a_keycode_is_free(ours, keymap, now=100.0 + RECYCLE_AFTER_S + 1) == 0.0
    assert until_a_keycode_is_free(ours, {10: [0x61]}, now=100.5) is None  # its keycode was taken away


def test_the_clipboard_on_x11_pastes_every_language_exactly(xterm):  # noqa: F811
    read_back = xterm(*XTERM_PASTES_ON_CTRL_V)
    ClipboardSink("ctrl+v", delay_ms=2).type(0, LINES)
    assert read_back() == LINES + "\n"
