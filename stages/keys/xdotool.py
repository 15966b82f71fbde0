"""The `xdotool` sink: types into the focused X11 window through XTEST (no root needed).

Needs an X11 session (DISPLAY), xdotool and xmodmap. Reaches X11 windows only: under a
Wayland compositor, XWayland windows but never native Wayland ones. Types any Unicode
character: those no key types are bound to spare keycodes first, and stay so.
"""

import time
from collections.abc import Mapping

from stages.keys.sinks import chunks, parse_chord, pieces, require_session, require_tools, run_tool, tool_env

# xdotool types a character that no key produces by binding it to a spare keycode for
# one key press and unbinding it at once: an app that looks the key up after the unbind
# (a busy one) gets nothing, or the next such character. Measured into xterm under
# Xvfb with both cores busy: "café ✓ ß naïve über" typed exactly 0 of 8 times at
# --delay 12, 2 of 8 at 5; with the bindings below, 80 of 80 lines of such text at
# --delay 1 to 12.
# So the sink binds such characters to spare keycodes itself, before typing, and leaves
# them bound: the X server tells every app of a new mapping before any key typed after
# it, so no timing is involved. A spare keycode keeps its character until it is needed
# for another one, which waits until the keys typed with it have long been read (a new
# mapping applies to keys still queued in a busy app, too).
# Xvfb leaves 18 keycodes spare, and one French sentence needs 23 characters no US key
# types: a text that needs more than are spare is typed up to the first character
# without a keycode, then the rest once a keycode is free again. Left to xdotool's own
# binding, they were lost or typed in the wrong case ("ÇA, À Évian" arrived as "A,  évian").
RECYCLE_AFTER_S = 2.0


def keysym_of(char: str) -> int:
    code = ord(char)
    # Latin-1 characters are keysyms of the same value; the others have Unicode keysyms.
    return code if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF else 0x1000000 + code


def parse_keymap(listing: str) -> dict[int, list[int]]:
    """`xmodmap -pk` output -> {keycode: its keysyms}, NoSymbol left out."""
    keymap = {}
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            keymap[int(fields[0])] = [
                int(field, 16) for field in fields[1:] if field.startswith("0x") and int(field, 16)
            ]
    return keymap


def bindings_for(text: str, keymap: dict[int, list[int]], ours: dict[int, float], now: float) -> dict[int, int]:
    """{spare keycode: keysym} for the characters of `text` that no key types. Spare:
    unbound keycodes, highest first (far from real keys), then keycodes this sink bound
    (`ours`: keycode -> when last typed) idle for RECYCLE_AFTER_S, least recent first.
    Characters left without one wait for a keycode to be free (`with_keys`)."""
    bound = {keysym for keysyms in keymap.values() for keysym in keysyms}
    wanted = [keysym_of(char) for char in dict.fromkeys(text) if char != "\n" and keysym_of(char) not in bound]
    spare = [code for code in sorted(keymap, reverse=True) if not keymap[code] and code > 8]
    spare += [code for code in sorted(ours, key=ours.get) if code in keymap and now - ours[code] >= RECYCLE_AFTER_S]
    return dict(zip(spare, wanted))


def with_keys(text: str, keymap: dict[int, list[int]]) -> str:
    """The start of `text` whose characters all have a key in `keymap` (Return is one)."""
    bound = {keysym for keysyms in keymap.values() for keysym in keysyms}
    for end, char in enumerate(text):
        if char != "\n" and keysym_of(char) not in bound:
            return text[:end]
    return text


def until_a_keycode_is_free(ours: dict[int, float], keymap: dict[int, list[int]], now: float) -> float | None:
    """Seconds until a keycode this sink bound may be bound anew; None if it has none left."""
    still_ours = [typed for code, typed in ours.items() if code in keymap]
    return max(0.0, min(still_ours) + RECYCLE_AFTER_S - now) if still_ours else None


class XdotoolSink:
    """Types into the focused X11 window through XTEST (no root needed)."""

    name = "xdotool"

    def __init__(self, delay_ms: int = 4, env: Mapping[str, str] | None = None):
        self.env = tool_env(env)
        require_tools(self.env, "xdotool", "xmodmap")
        require_session(self.env, "DISPLAY", "xdotool")
        self.delay = str(delay_ms)
        self.ours: dict[int, float] = {}  # keycodes this sink bound -> when last typed

    def type(self, backspaces: int, text: str) -> None:
        for count in chunks(backspaces):
            run_tool(["xdotool", "key", "--delay", self.delay] + ["BackSpace"] * count, self.env)
        for piece in pieces(text):  # xdotool types "\n" as Return
            while piece:
                keymap = self.bind(piece)
                ready = with_keys(piece, keymap)
                wait_s = None if ready else until_a_keycode_is_free(self.ours, keymap, time.monotonic())
                if wait_s is not None:
                    time.sleep(wait_s)
                    continue
                ready = ready or piece  # no keycode will ever be free: xdotool binds its own
                run_tool(["xdotool", "type", "--delay", self.delay, "--", ready], self.env)
                self.ours.update(dict.fromkeys(self.keycodes_of(ready, keymap), time.monotonic()))
                piece = piece[len(ready) :]

    def bind(self, text: str) -> dict[int, list[int]]:
        """Binds the characters of `text` that no key types to spare keycodes, as many
        as there are; returns the keymap with them."""
        # Even ASCII: a non-Latin layout may lack it. Reading the keymap takes ~3 ms.
        keymap = parse_keymap(run_tool(["xmodmap", "-pk"], self.env).decode())
        binding = bindings_for(text, keymap, self.ours, time.monotonic())
        if binding:
            expressions = []
            for code, keysym in binding.items():
                expressions += ["-e", f"keycode {code} = 0x{keysym:x} 0x{keysym:x}"]  # shifted or not
                keymap[code] = [keysym]
                self.ours.setdefault(code, time.monotonic())
            run_tool(["xmodmap", *expressions], self.env)
        return keymap

    def keycodes_of(self, text: str, keymap: dict[int, list[int]]) -> list[int]:
        """The keycodes this sink bound that typing `text` uses."""
        used = {keysym_of(char) for char in text}
        return [code for code in self.ours if used.intersection(keymap.get(code, []))]

    def press(self, chord: str) -> None:
        parse_chord(chord)
        # --clearmodifiers: a modifier the user still holds would change the chord
        run_tool(["xdotool", "key", "--clearmodifiers", chord], self.env)
