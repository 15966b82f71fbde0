"""keys: `keystrokes` -> real keystrokes in a sink, then `typed` to say so.

Consumes: `keystrokes`, `end`.
Produces: one `typed` per keystrokes frame, marked `first_key` (the sink was handed the
first keystroke) and `last_key` (the sink returned), carrying what was typed or the
error that stopped it; then `end`.
Sinks (`sink` in config): "stdout"; "file:PATH", a document kept exactly as typed
(backspaces truncate it); "xdotool", the focused X11 window.
Guarantees: types exactly what the router and the model stages decided, as text
only (control characters never reach a sink); a failing sink is reported in
`typed.error` and the log, never silently. Each utterance is typed once: how far each
was typed is written down (bus/state.py) before the keys are pressed, so a re-sent
piece, or one that arrives again after keys restarts, types only what is still missing.
A final piece that was already typed is acknowledged again, typing nothing.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bus import state as persistence
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
    """Appends to a file; a backspace removes the file's last character, as it would in
    an editor (so it works the same after keys restarts)."""

    def __init__(self, path: str):
        self.path = Path(path)
        try:
            self.path.open("a", encoding="utf-8").close()
        except OSError as error:
            raise StageError(f"cannot open typing sink file {path}: {error.strerror}") from None

    def type(self, backspaces: int, text: str) -> None:
        if backspaces:
            kept = self.path.read_text(encoding="utf-8")[:-backspaces]
            self.path.write_text(kept, encoding="utf-8")
        with self.path.open("a", encoding="utf-8") as file:
            file.write(text)


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


RECENT_UTTERANCES = 50


def still_to_type(strokes: Keystrokes, done: dict) -> tuple[int, str]:
    """What of a keystrokes frame has not been typed yet, given how far its utterance
    got (`done`: chars typed, whether its backspaces were pressed)."""
    backspaces = 0 if done.get("erased") else strokes.backspaces
    skip = max(0, done.get("typed", 0) - strokes.offset)
    return backspaces, strokes.text[skip:]


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
        self.state_path = persistence.path_for(self.config, self.name)
        self.done: dict[str, dict] = persistence.load(self.state_path)

    def handle(self, frame: Frame) -> None:
        strokes: Keystrokes = frame.body
        strokes.text = safe_text(strokes.text, allow_newlines=True)
        done = self.done.setdefault(frame.utt, {})
        if done.get("final"):
            self.publish(Typed(text="", by=frame.src, final=True), utt=frame.utt, marks=frame.marks)
            return
        backspaces, text = still_to_type(strokes, done)
        # Written down before the keys are pressed: after a crash in between, a piece is
        # lost rather than typed twice.
        done.update(typed=max(done.get("typed", 0), strokes.offset + len(strokes.text)), erased=True, final=strokes.final)
        self.done = dict(list(self.done.items())[-RECENT_UTTERANCES:])
        persistence.save(self.state_path, self.done)
        marks = mark(frame.marks, "first_key")
        error = ""
        try:
            self.sink.type(backspaces, text)
        except (OSError, subprocess.SubprocessError) as failure:
            error = str(failure)
            self.peer.counters["sink_errors"] += 1
            self.log.error("typing failed", utt=frame.utt, error=error)
        self.publish(
            Typed(
                text="" if error else text,
                backspaces=0 if error else backspaces,
                error=error,
                by=frame.src,
                final=strokes.final,
            ),
            utt=frame.utt,
            marks=mark(marks, "last_key"),
        )


if __name__ == "__main__":
    main(Keys)
