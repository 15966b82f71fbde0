"""Sound cues (`[cli] sound_cues`): a short rising tone when listening starts, a falling
one when it stops, played through `paplay` or `pw-play` if the session has one.

The tones are made here (`tone`, pure: a 16-bit mono WAV) and written once into a
private directory; playing never waits, so a sound server that hangs cannot hold up
`voxkey up`, the tray or `status --follow`, which play them.
"""

import io
import math
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

RATE = 22_050
PLAYERS = ("paplay", "pw-play")


def tone(start_hz: float, end_hz: float, seconds: float = 0.12, volume: float = 0.3) -> bytes:
    """A WAV of a sine gliding from `start_hz` to `end_hz`, faded in and out (no clicks)."""
    count = int(RATE * seconds)
    fade = max(1, count // 8)
    samples = bytearray()
    phase = 0.0
    for n in range(count):
        phase += 2 * math.pi * (start_hz + (end_hz - start_hz) * n / count) / RATE
        envelope = min(1.0, n / fade, (count - 1 - n) / fade)
        samples += int(32767 * volume * envelope * math.sin(phase)).to_bytes(2, "little", signed=True)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(bytes(samples))
    return out.getvalue()


def cue_of(was_listening: bool | None, listening: bool | None) -> str:
    """ "on", "off", or "" when listening did not change (or was not known before)."""
    if was_listening is None or listening is None or was_listening == listening:
        return ""
    return "on" if listening else "off"


class Cues:
    """Plays a cue; silent where no player is installed."""

    def __init__(self):
        self.player = next((tool for tool in map(shutil.which, PLAYERS) if tool), None)
        self.files: dict[str, Path] = {}
        if self.player:
            folder = Path(tempfile.mkdtemp(prefix="voxkey-cues-"))  # 0700, ours
            for name, (start, end) in {"on": (660, 990), "off": (990, 660)}.items():
                self.files[name] = folder / f"listening-{name}.wav"
                self.files[name].write_bytes(tone(start, end))

    def play(self, cue: str) -> None:
        if cue and self.player:
            subprocess.Popen(
                [self.player, str(self.files[cue])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
