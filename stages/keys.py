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
was typed, and what its sink was given, is written down (bus/state.py) before the keys
are pressed, so a re-sent piece, or one that arrives again after keys restarts, types
only what is still missing. Its acknowledgement repeats what the sink already had
(`Typed.already`, see bus/frames.py), so a listener that missed the first one can still
learn what was typed. A final piece that was already typed is acknowledged again,
typing nothing.
After it starts, keys holds what arrives for `LISTENERS_RECONNECT_S`: vad, the router
and the CLI reconnect to a restarted keys by themselves, and an acknowledgement
published before they have would be lost to them.
Crash windows: killed after typing but before acknowledging, nothing is lost: vad
re-sends the utterance and the new acknowledgement reports the text. Killed between
writing down and typing (microseconds), the piece is lost from the sink rather than
typed twice, and the acknowledgements still report it: keys cannot tell whether the
sink got it.
"""

import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bus import state as persistence
from bus.frames import EndOfStream, Frame, Keystrokes, Typed
from bus.stage import POLL_CAP_S, Stage, StageError, main, mark
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
# Listeners retry a lost connection every 100 ms (ZeroMQ's default): by then a restarted
# keys is heard again.
LISTENERS_RECONNECT_S = 0.5


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
        # utterance id -> {"typed": chars typed by the producer's offsets, "erased": its
        # backspaces were pressed, "backspaces": how many, "text": what the sink was
        # given, "final": its last piece was typed}
        self.done: dict[str, dict] = persistence.load(self.state_path)
        self.held: collections.deque[Frame] = collections.deque()
        self.hold_until = time.monotonic() + LISTENERS_RECONNECT_S

    def handle(self, frame: Frame) -> None:
        self.held.append(frame)
        self._release()

    def on_end(self, frame: Frame) -> None:
        self.held.append(frame)  # `end` stays behind the keystrokes that came before it
        self._release()

    def tick(self) -> float:
        try:
            self._release()
        except Exception:  # as the runtime does for a frame: log it, count it, go on
            self.peer.counters["errors"] += 1
            self.log.exception("failed to handle a held frame")
        if self.held:
            return max(0.0, self.hold_until - time.monotonic())
        return POLL_CAP_S

    def _release(self) -> None:
        """Handle what was held, in order, once listeners can hear the acknowledgements."""
        while self.held and time.monotonic() >= self.hold_until:
            frame = self.held.popleft()
            if isinstance(frame.body, EndOfStream):
                super().on_end(frame)
            else:
                self.type_keystrokes(frame)

    def type_keystrokes(self, frame: Frame) -> None:
        strokes: Keystrokes = frame.body
        done = self.done.setdefault(frame.utt, {})
        if done.get("final"):  # typed whole before: acknowledged again, typing nothing
            self.publish(acknowledgement(done, "", frame.src, repeated=True), utt=frame.utt, marks=frame.marks)
            return
        if strokes.offset > done.get("typed", 0):
            # Pieces before this one never arrived (they were sent while this process
            # was down). Typing it would put text out of order: it is left unacknowledged,
            # so vad re-sends the utterance and the answer comes again from the start.
            self.peer.counters["pieces_after_a_gap"] += 1
            self.log.warning("piece after a gap: waiting for the utterance again", utt=frame.utt,
                             offset=strokes.offset, typed=done.get("typed", 0))
            return
        given = done.get("text", "")  # what the sink already has for this utterance
        repeated = strokes.offset < done.get("typed", 0)
        backspaces, text = still_to_type(strokes, done)
        text = safe_text(text, allow_newlines=True)  # offsets count the producer's text
        # Written down before the keys are pressed: after a crash in between, a piece is
        # lost rather than typed twice.
        done.update(
            typed=max(done.get("typed", 0), strokes.offset + len(strokes.text)),
            erased=True,
            backspaces=done.get("backspaces", 0) + backspaces,
            text=given + text,
            final=strokes.final,
        )
        self._save()
        marks = mark(frame.marks, "first_key")
        try:
            self.sink.type(backspaces, text)
        except (OSError, subprocess.SubprocessError) as failure:
            self.peer.counters["sink_errors"] += 1
            self.log.error("typing failed", utt=frame.utt, error=str(failure))
            done.update(text=given, backspaces=done["backspaces"] - backspaces)  # the sink did not get them
            self._save()
            typed = Typed(text="", error=str(failure), by=frame.src, final=strokes.final, offset=len(given))
        else:
            typed = acknowledgement(done, text, frame.src, repeated, backspaces)
        self.publish(typed, utt=frame.utt, marks=mark(marks, "last_key"))

    def _save(self) -> None:
        self.done = dict(list(self.done.items())[-RECENT_UTTERANCES:])
        persistence.save(self.state_path, self.done)


def acknowledgement(done: dict, text: str, by: str, repeated: bool, backspaces: int = 0) -> Typed:
    """The `typed` for a piece whose `text` the sink was just given (`done` already
    counts it). A repeated piece also says what the sink had before it, and how many
    backspaces the utterance began with, for a listener that missed them."""
    given = done.get("text", "")
    before = given[: len(given) - len(text)]
    return Typed(
        text=text,
        backspaces=done.get("backspaces", 0) if repeated else backspaces,
        by=by,
        final=done.get("final", True),
        offset=len(before),
        already=before if repeated else "",
    )


if __name__ == "__main__":
    main(Keys)
