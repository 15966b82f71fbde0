"""The `hid` sink: the Pi as the USB keyboard of another computer.

With the Pi's USB-C port in device mode and the gadget `voxkey gadget setup` makes
(voxkey/gadget.py), the kernel exposes a boot-protocol keyboard as /dev/hidg0. Writing an
8-byte input report to it (modifier bits, a reserved byte, up to six key usages) is a
key state the host reads at its next poll; the sink writes a press, then an all-keys-up
report, for each character. The host turns usages into characters through its own
layout, which the Pi cannot see: `hid_layout` names it (stages/keys/layouts.py, the
tables the uinput sink uses, without what only Linux's layouts add, for the host may be
Windows; a key's usage comes from USAGES below). A letter under a dead key is two
presses: "ê" on French is the dead ^, then e. A character that layout cannot type is
skipped, not typed wrong, and the error names it; the sink remembers which characters
it skipped (or lost with the host), so that a later "scratch that" presses Backspace
only for those the host got.

The host sends its keyboard LEDs back as one-byte output reports, read from the same
device: with Caps Lock on, letters are typed with Shift inverted, so they come out as
meant (on hosts where Shift undoes Caps Lock: Windows, Linux; macOS does not).

`hid:PATH` also writes to a regular file (reports appended) or a FIFO, where no LED
report is read: the reports can be checked without a USB port.

A host that is unplugged or asleep stops reading reports: a write then fails
(ESHUTDOWN: no host has configured the gadget) or is not taken within HOST_TIMEOUT_S.
The sink says so in one line, with what did reach the host; nothing is kept to be typed
later, so typing resumes with the next utterance once the host is back, and nothing is
typed twice. A key left down (its press handed over, its release not) is released the
moment the host takes reports again, so a host that wakes up does not repeat it.
"""

import errno
import os
import select
import stat
import threading
import time
from dataclasses import dataclass

from stages.keys import layouts
from stages.keys.sinks import SinkError, SinkUnavailable, open_private

DEVICE = "/dev/hidg0"
REPORT_BYTES = 8
RELEASE = bytes(REPORT_BYTES)
NOT_TYPED = "what had not reached it is not typed, now or later"
# A host polls a keyboard every 1 to 10 ms while awake: a report not taken for a second
# means nobody is reading.
HOST_TIMEOUT_S = 1.0
LED_CAPS_LOCK = 0x02  # bit 1 of the LED output report (HID Usage Tables, LED page 0x08)
SHIFT, ALTGR = 0x02, 0x40  # left Shift and right Alt (AltGr) in the modifier byte
MODIFIER_BITS = {layouts.KEY_LEFTSHIFT: SHIFT, layouts.KEY_RIGHTALT: ALTGR}
# Characters lately given whose fate (typed or not) is kept, for the backspaces that
# may erase them: more than the longest model answer (4096 tokens).
REMEMBERED = 20_000

# HID Usage Tables 1.5, Keyboard/Keypad page (0x07): the usage of every key the layouts
# use, by the Linux key code of the same physical key (linux/input-event-codes.h).
USAGES = {
    41: 0x35,  # grave
    2: 0x1E,
    3: 0x1F,
    4: 0x20,
    5: 0x21,
    6: 0x22,
    7: 0x23,
    8: 0x24,
    9: 0x25,
    10: 0x26,
    11: 0x27,  # 1..9, 0
    12: 0x2D,
    13: 0x2E,  # minus, equal
    16: 0x14,
    17: 0x1A,
    18: 0x08,
    19: 0x15,
    20: 0x17,
    21: 0x1C,
    22: 0x18,
    23: 0x0C,
    24: 0x12,
    25: 0x13,  # q..p
    26: 0x2F,
    27: 0x30,  # left and right bracket
    30: 0x04,
    31: 0x16,
    32: 0x07,
    33: 0x09,
    34: 0x0A,
    35: 0x0B,
    36: 0x0D,
    37: 0x0E,
    38: 0x0F,  # a..l
    39: 0x33,
    40: 0x34,  # semicolon, apostrophe
    # The key left of Return: "\ and |" (0x31) on ANSI boards, "Non-US # and ~" (0x32)
    # on ISO ones. Linux and Windows read both as this one key; 0x31 is the common one.
    43: 0x31,
    86: 0x64,  # Non-US "\ and |": the ISO key left of z
    44: 0x1D,
    45: 0x1B,
    46: 0x06,
    47: 0x19,
    48: 0x05,
    49: 0x11,
    50: 0x10,  # z..m
    51: 0x36,
    52: 0x37,
    53: 0x38,  # comma, period, slash
    layouts.KEY_ENTER: 0x28,
    layouts.KEY_BACKSPACE: 0x2A,
    layouts.KEY_TAB: 0x2B,
    layouts.KEY_SPACE: 0x2C,
}
BACKSPACE = USAGES[layouts.KEY_BACKSPACE]


@dataclass(frozen=True)
class Key:
    modifiers: int  # the modifier byte
    usage: int
    caps: bool = False  # Caps Lock shifts it (a letter typed plain or with Shift)


# --- reports (pure) --------------------------------------------------------------------


def keys_table(layout: str) -> dict[str, tuple[Key, ...]]:
    """Every character the host layout types, as the keys that type it: one, or a dead
    key and the letter it accents. Only what every host with the layout types alike:
    the hid sink cannot tell Windows from Linux."""
    table = layouts.strokes_table(layout, xkb=False)  # raises UnknownLayout first
    shifted_by_caps = layouts.caps_keys(layout)

    def key(modifiers: tuple[int, ...], code: int) -> Key:
        caps = code in shifted_by_caps and layouts.KEY_RIGHTALT not in modifiers
        return Key(sum(MODIFIER_BITS[modifier] for modifier in modifiers), USAGES[code], caps)

    return {char: tuple(key(*stroke) for stroke in strokes) for char, strokes in table.items()}


def press(key: Key, caps_lock: bool = False) -> bytes:
    """The report that holds `key` down; with the host's Caps Lock on, a letter's Shift is
    inverted so that the host's Caps Lock inverts it back."""
    modifiers = key.modifiers ^ SHIFT if caps_lock and key.caps else key.modifiers
    return bytes([modifiers, 0, key.usage, 0, 0, 0, 0, 0])


def reports_for(text: str, table: dict[str, tuple[Key, ...]], caps_lock: bool = False) -> list[bytes]:
    """Press and release for each key of each character of `text` (all in `table`)."""
    return [report for char in text for key in table[char] for report in (press(key, caps_lock), RELEASE)]


def backspace_reports(count: int) -> list[bytes]:
    return [press(Key(0, BACKSPACE)), RELEASE] * count


def caps_lock_of(leds: bytes, was: bool) -> bool:
    """The host's Caps Lock after the LED reports `leds` (one byte each), read in order."""
    return bool(leds[-1] & LED_CAPS_LOCK) if leds else was


# --- the device -----------------------------------------------------------------------


class HidSink:
    """Types through a USB HID gadget keyboard (or a file or FIFO standing in for it)."""

    name = "hid"

    def __init__(
        self, path: str = DEVICE, layout: str = "us", delay_ms: int = 4, host_timeout_s: float = HOST_TIMEOUT_S
    ):
        try:
            self.table = keys_table(layout)
        except layouts.UnknownLayout:
            raise SinkUnavailable(
                f"host keyboard layout {layout!r} is not known to the hid sink: "
                f"set stages.keys.hid_layout to one of {layouts.SUPPORTED}"
            ) from None
        self.path, self.layout = path, layout
        self.delay_s = delay_ms / 1000
        self.host_timeout_s = host_timeout_s
        self.fd, self.leds = open_device(path)
        self.caps_lock = False
        self.owed_release = False  # a press reached the host, its release did not
        self.recent: list[bool] = []  # for each character given lately: whether it was typed
        self.lock = threading.Lock()  # between typing and a release waiting for the host
        self.releaser: threading.Thread | None = None

    def type(self, backspaces: int, text: str):
        """Returns what reached the host, as (backspaces, text), when it is not all that
        was asked; raises SinkError naming what did not."""
        with self.lock:
            try:
                return self._type(backspaces, text)
            finally:
                if self.owed_release:
                    self._release_when_back()

    def _type(self, backspaces: int, text: str):
        erased = typed = 0
        mark = None  # where this text's characters begin in `recent`
        skipped = layouts.unproducible(text, self.table)
        try:
            if self.owed_release:  # the last key is still down on the host
                self._release()
            for _ in range(backspaces):
                if self.recent and not self.recent[-1]:
                    self.recent.pop()  # a character the host never got: nothing to erase
                    continue
                self._press(Key(0, BACKSPACE))
                erased += 1  # once pressed, whether or not its release gets through
                if self.recent:
                    self.recent.pop()
                self._release()
            mark = len(self.recent)
            for char in text:
                if char not in self.table:
                    self.recent.append(False)
                    continue
                *dead_key, letter = self.table[char]
                for key in dead_key:  # the host holds the accent for the letter
                    self._press(key)
                    self._release()
                self._press(letter)
                self.recent.append(True)
                typed += 1
                self._release()
        except SinkError as failure:
            # What was not pressed is not on the host: a later "scratch that" must not
            # erase anything for it.
            self.recent.extend([False] * (len(text) - (len(self.recent) - mark if mark is not None else 0)))
            failure.reached = (erased, self._typed_part(text, typed))
            raise
        finally:
            del self.recent[:-REMEMBERED]
        reached = (erased, self._typed_part(text, typed))
        if skipped:
            failure = SinkError(
                f"the host's {self.layout} keyboard layout has no key for {skipped!r}: skipped "
                f"(set stages.keys.hid_layout to the host's layout; {layouts.SUPPORTED} are known)"
            )
            failure.reached = reached
            raise failure
        return None if reached == (backspaces, text) else reached

    def _typed_part(self, text: str, typed: int) -> str:
        """The first `typed` characters of `text` the host layout has keys for."""
        return "".join(char for char in text if char in self.table)[:typed]

    def _press(self, key: Key) -> None:
        self._read_leds()
        self._send(press(key, self.caps_lock))
        self.owed_release = True

    def _release(self) -> None:
        self._send(RELEASE)
        self.owed_release = False

    def _release_when_back(self) -> None:
        """A key is down on the host: its press was handed over, its release was not. A
        host that wakes up takes the press and would repeat the key until the next
        utterance, so the release goes the moment the host takes reports again."""
        if self.releaser is None or not self.releaser.is_alive():
            self.releaser = threading.Thread(target=self._release_later, name="hid-release", daemon=True)
            self.releaser.start()

    def _release_later(self) -> None:
        select.select([], [self.fd], [])  # until the host has taken the press
        with self.lock:
            if self.owed_release:
                try:
                    self._release()
                except SinkError:
                    pass  # gone again: the next type() sends it first

    def _read_leds(self) -> None:
        """Takes every LED report the host sent since the last key (the gadget gives one
        per read)."""
        said = b""
        while self.leds:
            try:
                report = os.read(self.fd, 64)
            except OSError:  # none waiting (EAGAIN), or a stand-in that cannot say
                break
            if not report:
                break
            said += report
        self.caps_lock = caps_lock_of(said, self.caps_lock)

    def _send(self, report: bytes) -> None:
        deadline = time.monotonic() + self.host_timeout_s
        while True:
            try:
                os.write(self.fd, report)  # 8 bytes: written whole, or not at all
                break
            except BlockingIOError:  # the host has not taken the last report yet
                if not select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))[1]:
                    raise SinkError(
                        f"the USB host did not read the keyboard ({self.path}) for {self.host_timeout_s:g} s: "
                        f"is the computer asleep or unplugged? {NOT_TYPED}"
                    ) from None
            except OSError as error:
                raise SinkError(host_gone(self.path, error)) from None
        time.sleep(self.delay_s)  # pacing for hosts and apps that miss keys typed too fast

    def close(self) -> None:
        os.close(self.fd)


def host_gone(path: str, error: OSError) -> str:
    if error.errno == errno.ESHUTDOWN:
        return (
            f"no USB host is using the keyboard {path}: plug the Pi's USB-C port into a computer "
            f"(voxkey gadget status says more); {NOT_TYPED}"
        )
    if error.errno == errno.EPIPE:
        return f"nobody reads {path} any more: start its reader again; {NOT_TYPED}"
    return f"cannot write to {path} ({error.strerror}): see voxkey gadget status"


def open_new_file(path: str) -> int:
    try:
        return open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except OSError as error:
        raise SinkUnavailable(f"cannot create {path}: {error.strerror}") from None


def open_device(path: str) -> tuple[int, bool]:
    """(descriptor, whether LED reports are read from it): a device is read and written,
    a FIFO written, a regular file appended to."""
    try:
        kind = os.stat(path).st_mode
        if stat.S_ISCHR(kind):
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC), True
        if stat.S_ISFIFO(kind):
            return open_private(path, os.O_WRONLY | os.O_NONBLOCK), False
        return open_private(path, os.O_WRONLY | os.O_APPEND), False
    except FileNotFoundError:
        if path == DEVICE:
            raise SinkUnavailable(
                f"{DEVICE} does not exist: sudo voxkey gadget setup "
                "(needs USB device mode: see the README, Use it as a USB keyboard)"
            ) from None
        return open_new_file(path), False
    except PermissionError:
        raise SinkUnavailable(
            f'{path} is not writable: add the udev rule KERNEL=="hidg[0-9]*", GROUP="input", MODE="0660" '
            "and join the input group"
        ) from None
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise SinkUnavailable(f"the FIFO {path} has no reader: start the reader first") from None
        raise SinkUnavailable(f"cannot open {path}: {error.strerror}") from None
