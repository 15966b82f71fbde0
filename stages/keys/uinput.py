"""The `uinput` sink: a kernel virtual keyboard (/dev/uinput).

Needs /dev/uinput writable (the `input` group and a udev rule). Works on any compositor
and on the text console, but sends key codes, so it presses what the user's keyboard
layout needs (`layout`, stages/keys/layouts.py), as XKB has it: "ê" on a French layout
is its dead ^ key, then e. A character the layout cannot type is pasted through the
clipboard when a session allows, and reported otherwise, never typed wrong.
"""

import os
import time
from collections.abc import Mapping

from stages.keys import layouts
from stages.keys.clipboard import ClipboardSink
from stages.keys.sinks import SinkError, SinkUnavailable, pieces, tool_env

UINPUT = "/dev/uinput"


def uinput_writable(device: str = UINPUT) -> bool:
    return os.access(device, os.W_OK)


def key_events(strokes: list[layouts.Stroke]) -> list[tuple[int, int]]:
    """(key, 1 for down or 0 for up) for each stroke in turn: its modifiers down, its key
    down and up, its modifiers up."""
    return [
        event
        for modifiers, code in strokes
        for event in [*((m, 1) for m in modifiers), (code, 1), (code, 0), *((m, 0) for m in reversed(modifiers))]
    ]


def uinput_problem(device: str = UINPUT) -> str:
    """Why the uinput sink cannot open `device`, with the fix; "" if it can."""
    if not os.path.exists(device):
        return f"{device} does not exist: sudo modprobe uinput (and add uinput to /etc/modules to keep it)"
    if not uinput_writable(device):
        return (
            f'{device} is not writable: add the udev rule KERNEL=="uinput", GROUP="input", MODE="0660" '
            "and join the input group (sudo usermod -aG input $USER), then log in again"
        )
    return ""


class UinputSink:
    """Presses keys on a virtual keyboard the kernel creates, as the user's layout needs."""

    name = "uinput"

    def __init__(
        self,
        layout: str = "auto",
        delay_ms: int = 4,
        paste_chord: str = "ctrl+v",
        env: Mapping[str, str] | None = None,
        device: str = UINPUT,
    ):
        if uinput_problem(device):
            raise SinkUnavailable(uinput_problem(device))
        self.layout = layouts.system_layout() if layout == "auto" else layout
        dead_keys = layouts.system_has_dead_keys() if layout == "auto" else True
        try:
            self.table = layouts.strokes_table(self.layout, dead_keys=dead_keys)
        except layouts.UnknownLayout as error:
            raise SinkUnavailable(str(error)) from None
        import evdev

        codes = {code for strokes in self.table.values() for _, code in strokes} | {
            layouts.KEY_BACKSPACE,
            layouts.KEY_LEFTSHIFT,
            layouts.KEY_RIGHTALT,
        }
        try:
            self.keyboard = evdev.UInput({evdev.ecodes.EV_KEY: sorted(codes)}, name="voxkey", devnode=device)
        except (OSError, evdev.UInputError) as error:
            raise SinkUnavailable(
                f"cannot create a virtual keyboard on {device} ({error}): see voxkey doctor"
            ) from None
        self.ecodes = evdev.ecodes
        self.delay_s = delay_ms / 1000
        self.env = tool_env(env)
        self.paste_chord = paste_chord
        self._paster = None

    def type(self, backspaces: int, text: str) -> None:
        self._press([((), layouts.KEY_BACKSPACE)] * backspaces)
        for typeable, run in layouts.runs(text, self.table):
            if typeable:
                for piece in pieces(run):  # a cancel is taken between pieces
                    self._press(layouts.strokes_for(piece, self.table))
            else:
                self._paste(run)

    def _press(self, strokes: list[layouts.Stroke]) -> None:
        for stroke in strokes:
            for key, value in key_events([stroke]):
                self.keyboard.write(self.ecodes.EV_KEY, key, value)
                self.keyboard.syn()
            time.sleep(self.delay_s)

    def _paste(self, run: str) -> None:
        if self._paster is None:
            try:
                self._paster = ClipboardSink(self.paste_chord, delay_ms=int(self.delay_s * 1000), env=self.env)
            except SinkUnavailable as why:
                raise SinkError(
                    f"the {self.layout} keyboard layout has no key for {run!r}, and it cannot be pasted ({why})"
                ) from None
        self._paster.type(0, run)
