"""A stand-in for the computer at the other end of the USB cable: it turns boot-keyboard
input reports back into text, as a host with a given keyboard layout would.

It knows the keys by their HID usages, written here from the HID Usage Tables
(Keyboard/Keypad page 0x07) row by row, not from the sink's own table, and what each
key types from the layout tables the sink uses (stages/keys/layouts.py)."""

from stages.keys.layouts import LAYOUTS, NOTHING

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
    text, held = "", False
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
        special = {ENTER: "\n", TAB: "\t", SPACE: " "}.get(usage)
        if special:
            text += special
            continue
        row, column = next((r, usages.index(usage)) for r, usages in enumerate(ROW_USAGES) if usage in usages)
        plain, shifted = levels[""][row][column], levels["shift"][row][column]
        shift = bool(modifiers & SHIFTS)
        if caps_lock and not modifiers & ALTGR and plain != shifted and plain.upper() == shifted:
            shift = not shift  # Caps Lock shifts letters; Shift undoes it (Windows, Linux)
        level = "altgr" if modifiers & ALTGR else "shift" if shift else ""
        assert modifiers & ~(SHIFTS | ALTGR) == 0, f"an unexpected modifier: {report.hex()}"
        char = levels[level][row][column] if level in levels else NOTHING
        assert char != NOTHING, (
            f"usage 0x{usage:02x} at level {level or 'plain'} types nothing (or is a dead key) on {layout}"
        )
        text += char
    return text
