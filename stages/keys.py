"""keys: `keystrokes` -> real keystrokes in a sink, then `typed` to say so.

Consumes: `keystrokes`, `end`.
Produces: one `typed` per keystrokes frame, marked `first_key` (the sink was handed the
first keystroke) and `last_key` (the sink returned), carrying what was typed or the
error that stopped it; then `end`.
Sinks (`sink` in config): "stdout"; "file:PATH", a document kept exactly as typed
(backspaces truncate it); "xdotool", the focused X11 window.
Guarantees: types exactly what the router and the model stages decided, as text
only (control characters never reach a sink); a failing sink is reported in
`typed.error` and the log, never silently.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bus.frames import Frame, Keystrokes, Typed
from bus.stage import Stage, StageError, main, mark
from bus.text import safe_text

BACKSPACE = "\b"


class StdoutSink:
    def __init__(self):
        self.out = sys.stdout

    def type(self, backspaces: int, text: str) -> None:
        self.out.write(BACKSPACE * backspaces + text)
        self.out.flush()


class FileSink:
    """Appends to a file; a backspace removes the last character this sink wrote."""

    def __init__(self, path: str):
        self.path = Path(path)
        try:
            self.file = open(self.path, "a+", encoding="utf-8")
        except OSError as error:
            raise StageError(f"cannot open typing sink file {path}: {error.strerror}") from None
        self.base = self.file.seek(0, os.SEEK_END)
        self.written = ""

    def type(self, backspaces: int, text: str) -> None:
        if backspaces:
            self.written = self.written[: max(0, len(self.written) - backspaces)]
            self.file.truncate(self.base + len(self.written.encode()))
            self.file.seek(0, os.SEEK_END)
        self.written += text
        self.file.write(text)
        self.file.flush()


class XdotoolSink:
    """Types into the focused X11 window through XTEST (no root needed)."""

    def __init__(self, delay_ms: int):
        if not shutil.which("xdotool"):
            raise StageError("xdotool is not installed: apt-get install xdotool (or choose sink=stdout)")
        if not os.environ.get("DISPLAY"):
            raise StageError("DISPLAY is not set: the xdotool sink needs an X11 session")
        self.delay = str(delay_ms)

    def type(self, backspaces: int, text: str) -> None:
        if backspaces:
            self._run(["key", "--delay", self.delay] + ["BackSpace"] * backspaces)
        if text:
            self._run(["type", "--delay", self.delay, "--", text])

    def _run(self, args: list[str]) -> None:
        result = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise OSError(f"xdotool {args[0]} failed: {result.stderr.strip() or result.returncode}")


def open_sink(spec: str, delay_ms: int):
    kind, _, argument = spec.partition(":")
    if kind == "stdout":
        return StdoutSink()
    if kind == "file" and argument:
        return FileSink(argument)
    if kind == "xdotool":
        return XdotoolSink(delay_ms)
    raise StageError(f"unknown typing sink {spec!r}: use stdout, file:PATH or xdotool")


class Keys(Stage):
    name = "keys"
    topics = (Keystrokes.TOPIC,)

    def setup(self) -> None:
        self.sink = open_sink(str(self.settings["sink"]), int(self.settings["key_delay_ms"]))

    def handle(self, frame: Frame) -> None:
        strokes: Keystrokes = frame.body
        text = safe_text(strokes.text, allow_newlines=True)
        marks = mark(frame.marks, "first_key")
        error = ""
        try:
            self.sink.type(strokes.backspaces, text)
        except (OSError, subprocess.SubprocessError) as failure:
            error = str(failure)
            self.peer.counters["sink_errors"] += 1
            self.log.error("typing failed", utt=frame.utt, error=error)
        self.publish(
            Typed(
                text="" if error else text,
                backspaces=0 if error else strokes.backspaces,
                error=error,
                by=frame.src,
                final=strokes.final,
            ),
            utt=frame.utt,
            marks=mark(marks, "last_key"),
        )


if __name__ == "__main__":
    main(Keys)
