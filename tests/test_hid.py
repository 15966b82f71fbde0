"""The hid sink (stages/keys/hid.py): the Pi as the USB keyboard of another computer.

No USB device controller exists on this machine, so no report reaches a real host
here. What is real: the reports, byte for byte, as the sink writes them to the file
descriptor it opened; the keys stage and the whole replay pipeline. What stands in:
for the host, tests/usb_host.py, which reads reports back into text under a layout
(its usages written from the HID Usage Tables, not taken from the sink); for
/dev/hidg0, a regular file or a FIFO (written only, as the sink does with them), or a
pseudo-terminal in raw mode where the host's LED reports must come back (a character
device, read and written like the gadget's)."""

import fcntl
import os
import select
import string
import tty

import pytest
from conftest import LoneStage, replay
from test_typing_languages import SENTENCES
from usb_host import split, typed

from bus.frames import Keystrokes
from stages.keys import hid, layouts
from stages.keys.choice import open_sink
from stages.keys.sinks import SinkError, SinkUnavailable

PRINTABLE_ASCII = string.printable[:-5] + "\n"  # without \t\r\x0b\x0c, with Return
# Characters each layout's own language writes, beyond ASCII.
OWN = {
    "us": "",
    "gb": "£€¬¦",
    "de": "äöüÄÖÜß§°²³€µ",
    "fr": "éèçàùÉÈÇÀÙâêîôûëïüÿœæ²°£¤µ§€",
    "es": "áéíóúüñÁÉÍÓÚÜÑ¿¡ºª·çÇ€¬",
    "it": "àèéìòùÀÈÉÌÒÙç°§£€",
}
# What each layout cannot type of the above on every host: keys Windows and Linux give
# different characters (gb AltGr+` is ¦ or |; fr AltGr+é and AltGr+è are a dead ~ and `
# on Windows, es AltGr+4 a dead ~), and what no key or dead key types (French capitals
# É È Ç À Ù, œ æ; Italian capitals À È É Ì Ò Ù). ^ and ` are a dead key and Space.
CANNOT = {"us": "", "gb": "¦", "de": "", "fr": "`~ÉÈÇÀÙœæ", "es": "~", "it": "`~ÀÈÉÌÒÙ"}
# What each language's sentence loses on its own layout, on every host.
OWN_LANGUAGE_CANNOT = {"de": "„“", "fr": "«’»ÇœŒæÀÉÈ", "es": "", "it": "ÈÀÉÌÒÙ"}


def key_of(table: dict, char: str) -> hid.Key:
    """The one key that types `char` (no dead key before it)."""
    (key,) = table[char]
    return key


def one_line(error: BaseException) -> str:
    assert str(error) and "\n" not in str(error)
    return str(error)


# --- reports: pure, against the HID Usage Tables ----------------------------------------


def test_keys_are_their_usages_from_the_hid_usage_tables():
    us = hid.keys_table("us")
    # Keyboard/Keypad page 0x07: a..z are 0x04..0x1D, 1..9 and 0 are 0x1E..0x27.
    assert [key_of(us, char).usage for char in string.ascii_lowercase] == list(range(0x04, 0x1E))
    assert [key_of(us, char).usage for char in "1234567890"] == list(range(0x1E, 0x28))
    assert [key_of(us, char).usage for char in "\n\t "] == [0x28, 0x2B, 0x2C]
    assert hid.BACKSPACE == 0x2A
    assert hid.press(key_of(us, "A")) == bytes([0x02, 0, 0x04, 0, 0, 0, 0, 0])  # left Shift + a
    assert hid.press(key_of(us, "a")) == bytes([0, 0, 0x04, 0, 0, 0, 0, 0])
    assert hid.reports_for("!", us) == [bytes([0x02, 0, 0x1E, 0, 0, 0, 0, 0]), bytes(8)]


@pytest.mark.parametrize(
    "layout, char, modifiers, usage",
    [
        ("de", "z", 0, 0x1C),
        ("de", "y", 0, 0x1D),
        ("de", "@", 0x40, 0x14),
        ("de", "ß", 0, 0x2D),
        ("de", "ä", 0, 0x34),
        ("de", "€", 0x40, 0x08),
        ("de", "|", 0x40, 0x64),
        ("fr", "a", 0, 0x14),
        ("fr", "q", 0, 0x04),
        ("fr", "1", 0x02, 0x1E),
        ("fr", "é", 0, 0x1F),
        ("fr", "m", 0, 0x33),
        ("fr", "@", 0x40, 0x27),
        ("gb", "£", 0x02, 0x20),
        ("gb", "@", 0x02, 0x34),
        ("gb", '"', 0x02, 0x1F),
        ("gb", "\\", 0, 0x64),
        ("us", "|", 0x02, 0x31),
        ("us", "~", 0x02, 0x35),
    ],
)
def test_the_host_layout_decides_the_key(layout, char, modifiers, usage):
    assert hid.press(key_of(hid.keys_table(layout), char)) == bytes([modifiers, 0, usage, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("layout", list(layouts.LAYOUTS))
def test_every_character_a_layout_has_reads_back_and_the_others_are_named(layout):
    table = hid.keys_table(layout)
    wanted = PRINTABLE_ASCII + OWN[layout]
    assert layouts.unproducible(wanted, table) == CANNOT[layout]
    typeable = "".join(char for char in wanted if char in table)
    for caps_lock in (False, True):
        assert typed(hid.reports_for(typeable, table, caps_lock), layout, caps_lock) == typeable


@pytest.mark.parametrize(
    "layout, char, dead_key, letter",
    [
        ("de", "é", (0, 0x2E), (0, 0x08)),  # the dead ´ (equal key), then e
        ("de", "^", (0, 0x35), (0, 0x2C)),  # the dead ^ (grave key), then Space
        ("fr", "ê", (0, 0x2F), (0, 0x08)),  # the dead ^ (left bracket key), then e
        ("fr", "Ï", (0x02, 0x2F), (0x02, 0x0C)),  # the dead ¨ (Shift), then Shift+i
        ("es", "Á", (0, 0x34), (0x02, 0x04)),  # the dead ´ (apostrophe key), then Shift+a
        ("es", "ü", (0x02, 0x34), (0, 0x18)),  # the dead ¨, then u
        ("es", "`", (0, 0x2F), (0, 0x2C)),  # the dead ` (left bracket key), then Space
    ],
)
def test_a_character_under_a_dead_key_is_two_key_presses(layout, char, dead_key, letter):
    table = hid.keys_table(layout)
    assert hid.reports_for(char, table) == [
        bytes([dead_key[0], 0, dead_key[1], 0, 0, 0, 0, 0]),
        hid.RELEASE,
        bytes([letter[0], 0, letter[1], 0, 0, 0, 0, 0]),
        hid.RELEASE,
    ]


@pytest.mark.parametrize("language", list(OWN_LANGUAGE_CANNOT))
def test_each_language_on_its_own_layout_reads_back_but_what_no_host_key_types(language):
    """The sentence's reports, read by the host under the same layout, are the sentence
    without what that layout cannot type on every host, which is named exactly."""
    sentence, table = SENTENCES[language], hid.keys_table(language)
    assert layouts.cannot_type(sentence, language, xkb=False) == OWN_LANGUAGE_CANNOT[language]
    typeable = "".join(char for char in sentence if char in table)
    assert typed(hid.reports_for(typeable, table), language) == typeable
    assert typed(hid.reports_for(typeable, table, caps_lock=True), language, caps_lock=True) == typeable


def test_caps_lock_inverts_shift_only_for_letters():
    de = hid.keys_table("de")
    assert hid.press(key_of(de, "a"), caps_lock=True)[0] == hid.SHIFT
    assert hid.press(key_of(de, "Ä"), caps_lock=True)[0] == 0
    assert hid.press(key_of(de, "1"), caps_lock=True)[0] == 0  # Caps Lock leaves digits alone
    assert hid.press(key_of(de, "@"), caps_lock=True)[0] == hid.ALTGR  # AltGr+q is no letter
    fr = hid.keys_table("fr")
    assert hid.press(key_of(fr, "é"), caps_lock=True)[0] == 0  # é/2 is not one letter's two cases
    assert hid.press(fr["ê"][1], caps_lock=True)[0] == hid.SHIFT  # the e after the dead ^ is a letter
    assert not fr["ê"][0].caps  # the dead ^ is none
    assert hid.caps_lock_of(b"\x02\x00", was=True) is False  # the last LED report counts
    assert hid.caps_lock_of(b"\x03", was=False) is True  # Num Lock and Caps Lock
    assert hid.caps_lock_of(b"", was=True) is True


# --- the sink writing reports -------------------------------------------------------------


def test_a_file_holds_the_reports_of_what_was_typed_and_erased(tmp_path):
    path = tmp_path / "reports"
    sink = open_sink(f"hid:{path}", hid_layout="de", hid_delay_ms=0)
    assert sink.name == "hid"
    assert sink.type(0, "Grüße, Zoo\n") is None  # all of it reached the file
    sink.type(len("Zoo\n"), "Straße?\t")
    reports = split(path.read_bytes())
    assert typed(reports, "de") == "Grüße, Straße?\t"


def test_dead_keys_reach_the_host_and_a_scratch_erases_each_accented_letter_once(tmp_path):
    path = tmp_path / "reports"
    sink = hid.HidSink(str(path), "es", delay_ms=0)
    assert sink.type(0, SENTENCES["es"] + " Pingüino") is None
    sink.type(len(" Pingüino"), "\n")  # "scratch that": one Backspace a letter, ü too
    assert typed(split(path.read_bytes()), "es") == SENTENCES["es"] + "\n"
    sink = hid.HidSink(str(path), "fr", delay_ms=0)
    with pytest.raises(SinkError) as skipped:
        sink.type(0, "Ça fête l’été")
    assert "'Ç’'" in one_line(skipped.value) and skipped.value.reached == (0, "a fête lété")


def test_a_character_the_host_layout_lacks_is_skipped_named_and_not_erased_later(tmp_path):
    path = tmp_path / "reports"
    sink = hid.HidSink(str(path), "us", delay_ms=0)
    with pytest.raises(SinkError) as skipped:
        sink.type(0, "Grüße ok")
    assert "'üß'" in one_line(skipped.value) and "us keyboard layout" in one_line(skipped.value)
    assert skipped.value.reached == (0, "Gre ok")
    # "scratch that" erases what was given, but only the typed characters have keys to erase
    assert sink.type(len("ße ok"), "") == (4, "")  # ß had no key: 5 given, 4 typed
    assert sink.type(0, "!") is None
    assert typed(split(path.read_bytes()), "us") == "Gr!"


def test_the_hosts_caps_lock_is_read_from_its_led_reports(tmp_path):
    """A pseudo-terminal stands in for /dev/hidg0: the test, as the host, writes an LED
    report into its master side and reads the input reports from it."""
    host, device = os.openpty()
    tty.setraw(device)
    try:
        sink = hid.HidSink(os.ttyname(device), "gb", delay_ms=0)
        assert sink.leds
        sink.type(0, "Hi")
        assert typed(read_reports(host, 4), "gb") == "Hi"
        os.write(host, b"\x02")  # Caps Lock on
        select.select([device], [], [])  # the report has reached the device side
        sink.type(0, "Hello, World 1")
        reports = read_reports(host, 2 * len("Hello, World 1"))
        assert typed(reports, "gb", caps_lock=True) == "Hello, World 1"
        assert typed(reports, "gb", caps_lock=False) == "hELLO, wORLD 1"  # what compensation undoes
        os.write(host, b"\x00")  # Caps Lock off
        select.select([device], [], [])
        sink.type(0, "ok")
        assert typed(read_reports(host, 4), "gb") == "ok"
        sink.close()
    finally:
        os.close(host)
        os.close(device)


def read_reports(fd: int, count: int) -> list[bytes]:
    """Exactly `count` reports, read as they come."""
    data = b""
    while len(data) < 8 * count:
        data += os.read(fd, 8 * count - len(data))
    return split(data)


def test_a_host_that_stops_reading_is_reported_and_typing_resumes_without_repeats(tmp_path):
    """A FIFO stands in for the USB host: its reader going away is the host unplugged."""
    fifo = tmp_path / "hidg"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = hid.HidSink(str(fifo), "fr", delay_ms=0)
    sink.type(0, "un ")
    assert typed(read_reports(reader, 6), "fr") == "un "
    os.close(reader)
    with pytest.raises(SinkError) as gone:
        sink.type(0, "deux ")
    assert "nobody reads" in one_line(gone.value) and gone.value.reached == (0, "")
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the host is back
    sink.type(0, "trois")
    sink.close()
    assert typed(split(read_to_end(reader)), "fr") == "trois"


def test_a_host_that_stops_taking_reports_times_out_and_what_it_missed_is_never_erased():
    """A pseudo-terminal whose other side nobody reads stands in for a host that went to
    sleep: the reports fill its buffer, and the next one is not taken in time."""
    host, device = os.openpty()
    tty.setraw(device)
    os.set_blocking(host, False)
    try:
        sink = hid.HidSink(os.ttyname(device), "us", delay_ms=0, host_timeout_s=0.2)
        sink.type(0, "kept ")
        lost = "x" * 12_000  # 192 KB of reports: more than a pseudo-terminal holds
        with pytest.raises(SinkError) as asleep:
            sink.type(0, lost)
        assert "did not read the keyboard" in one_line(asleep.value)
        erased, reached = asleep.value.reached
        assert erased == 0 and 0 < len(reached) < len(lost) and lost.startswith(reached)
        got = drain(host)  # the host wakes up and takes what was waiting
        # "scratch that" of the part the host never got presses nothing
        assert sink.type(len(lost) - len(reached), "") == (0, "")
        sink.type(0, "!")
        got += drain(host)
        assert typed(split(got), "us") == "kept " + reached + "!"
        sink.close()
    finally:
        os.close(host)
        os.close(device)


def drain(fd: int) -> bytes:
    """All a non-blocking descriptor holds now; its writer is idle, so that is all."""
    data = b""
    while True:
        try:
            data += os.read(fd, 65536)
        except BlockingIOError:
            return data


def test_a_key_left_down_when_the_host_stopped_is_released_once_it_reads_again(tmp_path):
    """A FIFO of one page stands in for a host that stops taking reports right after a
    press: with one report already waiting in it, 511 more fit, and the 512th, a
    release, does not. Once the host reads again, the release goes at once, by itself,
    so the host does not repeat the key until the next utterance."""
    fifo = tmp_path / "hidg"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)
    waiting = os.open(fifo, os.O_WRONLY)
    os.write(waiting, hid.RELEASE)
    os.close(waiting)
    sink = hid.HidSink(str(fifo), "us", delay_ms=0, host_timeout_s=0.1)
    with pytest.raises(SinkError) as asleep:
        sink.type(0, "x" * 300)
    assert asleep.value.reached == (0, "x" * 256) and sink.owed_release  # 255 keys and one press
    os.set_blocking(reader, True)
    got = read_reports(reader, 512)  # the host reads again
    assert got[-1] == hid.press(key_of(sink.table, "x"))
    assert read_reports(reader, 1) == [hid.RELEASE]  # sent as soon as there was room
    sink.releaser.join()
    assert not sink.owed_release
    sink.type(0, "y")
    sink.close()
    assert typed(got[1:] + [hid.RELEASE] + split(read_to_end(reader)), "us") == "x" * 256 + "y"


def read_to_end(fd: int) -> bytes:
    """What a FIFO holds once every writer has closed it (its end: EOF)."""
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return data


def test_what_the_sink_cannot_open_is_one_line(tmp_path):
    with pytest.raises(SinkUnavailable) as missing:
        hid.HidSink(hid.DEVICE)
    assert "sudo voxkey gadget setup" in one_line(missing.value)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SinkUnavailable, match="has no reader"):
        hid.HidSink(str(fifo))
    with pytest.raises(SinkUnavailable, match="one of us, gb, de, fr, es, it"):
        open_sink(f"hid:{tmp_path / 'r'}", hid_layout="dvorak")


# --- the keys stage: what reached the host is what is reported ----------------------------


def test_keys_reports_only_what_reached_the_host(tmp_path):
    """The keys stage as a real process, the test playing the router and the host."""
    fifo = tmp_path / "hidg"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keys = LoneStage("keys", ["router"], f'stages.keys.sink="hid:{fifo}"', 'stages.keys.hid_layout="us"')
    try:
        send(keys, "u1", "Grüß Gott.")
        first = acknowledged(keys, "u1")
        assert (first.text, "'üß'" in first.error) == ("Gr Gott.", True)
        assert typed(read_reports(reader, 2 * len("Gr Gott.")), "us") == "Gr Gott."
        os.close(reader)  # the host is gone
        send(keys, "u2", " Lost.")
        second = acknowledged(keys, "u2")
        assert second.text == "" and "nobody reads" in second.error
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # and back
        send(keys, "u3", " Back.")
        assert acknowledged(keys, "u3").text == " Back."
    finally:
        keys.close()
    assert typed(split(read_to_end(reader)), "us") == " Back."


def send(keys: LoneStage, utt: str, text: str) -> None:
    keys.send("router", Keystrokes(text=text, by="router"), utt=utt, key=f"{utt}+0")


def acknowledged(keys: LoneStage, utt: str):
    return keys.frames(lambda f: f.topic == "typed" and f.utt == utt)[-1].body


# --- voxkey replay through the sink -------------------------------------------------------


@pytest.fixture(scope="module")
def stdout_typed() -> str:
    return replay("session_dictation.wav")


@pytest.mark.parametrize("layout, stand_in", [("us", "fifo"), ("gb", "file"), ("de", "fifo"), ("fr", "file")])
def test_replay_reports_decode_to_what_the_stdout_sink_types(tmp_path, stdout_typed, layout, stand_in):
    """The whole pipeline on session_dictation.wav ("scratch that" included) through
    --sink hid:PATH; the test, as the host, decodes the reports under the same layout."""
    path = tmp_path / "hidg"
    if stand_in == "fifo":
        os.mkfifo(path)
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader before keys opens it
    printed = replay("session_dictation.wav", "--sink", f"hid:{path}", "--set", f'stages.keys.hid_layout="{layout}"')
    data = read_to_end(reader) if stand_in == "fifo" else path.read_bytes()  # keys has exited: EOF
    decoded = typed(split(data), layout)
    assert decoded == printed == stdout_typed
    assert "\n" in decoded and split(data).count(hid.press(hid.Key(0, hid.BACKSPACE))) > 0
