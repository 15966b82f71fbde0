"""keys: `keystrokes` -> real keystrokes in a sink, then `typed` to say so.

Consumes: `keystrokes` from the router, handed over reliably, in the order utterances
were spoken (dictation, and the pieces of a model's answer).
Produces: one `typed` per keystrokes frame, marked `first_key` (the sink was handed the
first keystroke) and `last_key` (the sink returned), carrying what was typed or the
error that stopped it.
Sinks (`sink` in config, stages/keys/choice.py): "auto" (chosen from the session and what is
installed; the log says which and why), "wtype" (Wayland), "xdotool" (X11),
"clipboard" (paste, then the clipboard put back), "uinput" (a kernel virtual keyboard,
pressing what `layout` needs), "hid" (the Pi as another computer's USB keyboard,
pressing what `hid_layout` needs; stages/keys/hid.py), "stdout", or "file:PATH".
"Scratch that" erases no more of an utterance than reached the app (`Keystrokes.erases`
names it; keys' own record says what its sink got).
Guarantees: types exactly what the router passed on, as text only (control characters
never reach a sink); a failing sink is reported in `typed.error` and the log, never
silently; when a sink typed only part of a piece (the hid sink skips what the host's
layout cannot type, or lost the host midway), only that part counts as typed. Each
place in an utterance's output is typed once: how far each utterance was typed, and
what its sink was given, is written to the state file before the keys are pressed, so
a piece that comes again (after a restart anywhere) types only what is still missing,
and is reported again with what the sink already had (`Typed.already`), for a
listener that missed the first report. A piece that disagrees with what was
already typed at its place (a model answer regenerated differently after a crash) is
never spliced in: what was typed stays, nothing more is typed for that utterance, and
the log and the counter `answers_regenerated_differently` say so.
Crash windows: killed after typing but before acknowledging, nothing is lost or
doubled: the router sends the piece again and it is reported, not typed. Killed
between writing down and typing (microseconds), the piece is lost from the sink
rather than typed twice: keys cannot ask the sink what it got.
"""

from dataclasses import dataclass, field, replace

from bus.frames import Frame, Keystrokes, Typed
from bus.progress import KeysProgress
from bus.records import require
from bus.stage import Stage, StageError, mark
from bus.text import safe_text
from stages.keys.choice import open_sink
from stages.keys.sinks import SinkError, SinkUnavailable

# As many as "scratch that" can reach back through (the router's Dictation.memory).
RECENT_UTTERANCES = 100


@dataclass
class Typing:
    """How far one utterance was typed."""

    source: str = ""  # the producer's text typed so far (offsets count in it)
    given: str = ""  # what the sink was given for it (the source made safe)
    backspaces: int = 0  # erased before its text
    erased: bool = False  # its backspaces were pressed
    final: bool = False  # its last piece was typed
    diverged: bool = False  # a piece came again different: nothing more is typed


def on_screen(typed: dict[str, Typing], utt: str) -> int:
    """How many characters of an utterance reached the app (0 for one keys never typed,
    or no longer remembers): as many as "scratch that" may erase of it."""
    done = typed.get(utt)
    return len(done.given) if done else 0


def still_to_type(strokes: Keystrokes, done: Typing) -> tuple[int, str, bool]:
    """What of a keystrokes frame is not typed yet: (backspaces, text, agrees), where
    `agrees` is False when the frame contradicts what was already typed at its place."""
    known = done.source[strokes.offset : strokes.offset + len(strokes.text)]
    agrees = strokes.offset <= len(done.source) and strokes.text.startswith(known)
    backspaces = 0 if done.erased else strokes.backspaces
    return backspaces, strokes.text[len(known) :] if agrees else "", agrees


@dataclass
class KeysState:
    """What keys keeps in its state file: how far each recent utterance was typed."""

    typed: dict[str, Typing] = field(default_factory=dict)

    def check(self) -> None:
        require(all(done.backspaces >= 0 for done in self.typed.values()), "backspaces must not be negative")


class Keys(Stage):
    name = "keys"

    def setup(self) -> None:
        try:
            self.sink = open_sink(
                str(self.settings["sink"]),
                int(self.settings["key_delay_ms"]),
                str(self.settings["paste_chord"]),
                layout=str(self.settings["layout"]),
                hid_layout=str(self.settings["hid_layout"]),
                hid_delay_ms=int(self.settings["hid_key_delay_ms"]),
            )
        except SinkUnavailable as error:
            raise StageError(str(error)) from None
        self.state = self.sink.name
        self.progress = KeysProgress(sink=self.sink.name, reason=self.sink.reason)
        self.log.info("typing sink", sink=self.sink.name, reason=self.sink.reason)
        self.done: dict[str, Typing] = self.load_state(KeysState).typed

    def handle(self, frame: Frame) -> None:
        strokes: Keystrokes = frame.body
        by = strokes.by or frame.src
        done = self.done.setdefault(frame.utt, Typing())
        if done.final:  # typed whole before: reported again, typing nothing
            self.publish(report(done, "", by, repeated=True), utt=frame.utt, marks=frame.marks)
            return
        backspaces, text, agrees = still_to_type(strokes, done)
        if strokes.erases:
            backspaces = min(backspaces, on_screen(self.done, strokes.erases))
        if not agrees and not done.diverged:
            done.diverged = True
            self.peer.counters["answers_regenerated_differently"] += 1
            self.log.warning(
                "piece disagrees with what was typed: keeping what was typed, typing no more of it",
                utt=frame.utt,
                offset=strokes.offset,
                typed=len(done.source),
            )
        if done.diverged:
            done.final = strokes.final
            self._save()
            self.publish(report(done, "", by, repeated=True), utt=frame.utt, marks=frame.marks)
            return
        given = done.given
        repeated = strokes.offset < len(done.source)
        safe = safe_text(text, allow_newlines=True)
        # Written down before the keys are pressed: after a crash in between, a piece is
        # lost rather than typed twice.
        done.source += text
        done.given += safe
        done.backspaces += backspaces
        done.erased = True
        done.final = strokes.final
        self._save()
        marks = mark(frame.marks, "first_key")
        error = ""
        try:
            erased, reached = self.sink.type(backspaces, safe) or (backspaces, safe)
        except Exception as failure:  # whatever a sink raises, the user hears that typing failed
            self.peer.counters["sink_errors"] += 1
            error = sink_failure(self.sink.name, failure)
            self.log.error("typing failed", utt=frame.utt, error=error)
            # What reached the app, when the sink knows; otherwise nothing is counted as typed.
            erased, reached = failure.reached if isinstance(failure, SinkError) else (0, "")
        if (erased, reached) != (backspaces, safe):  # only what reached the app counts
            done.given, done.backspaces = given + reached, done.backspaces - backspaces + erased
            self._save()
        typed = replace(report(done, reached, by, repeated, erased), error=error)
        self.publish(typed, utt=frame.utt, marks=mark(marks, "last_key"))
        self.progress = last_typed(self.progress, frame.utt, done, by, marks, typed.error)

    def _save(self) -> None:
        self.done = dict(list(self.done.items())[-RECENT_UTTERANCES:])
        self.save_state(KeysState(self.done))


def last_typed(progress: KeysProgress, utt: str, done: Typing, by: str, marks: dict, error: str) -> KeysProgress:
    """keys' progress with the utterance typed last, as `voxkey status` shows it. Its
    latency is the one users feel, from the end of speech to its first key, not to a
    later piece's; -1 when unknown."""
    speech_end, first_key = marks.get("speech_end"), marks.get("first_key")
    latency_ms = round((first_key - speech_end) / 1e6) if speech_end and first_key else -1
    if progress.last_utt == utt:
        latency_ms = progress.last_latency_ms
    return replace(
        progress, last_utt=utt, last_typed=done.given[-200:], last_by=by, last_latency_ms=latency_ms, last_error=error
    )


def sink_failure(sink: str, failure: Exception) -> str:
    """One line saying why typing failed: a SinkError says it itself (problem and fix);
    anything else is named with the sink it came from."""
    if isinstance(failure, SinkError):
        return str(failure)
    return f"the {sink} sink failed: {type(failure).__name__}: {' '.join(str(failure).split())}"


def report(done: Typing, text: str, by: str, repeated: bool, backspaces: int = 0) -> Typed:
    """The `typed` for a piece whose `text` the sink was just given (`done` already
    counts it). A repeated piece also says what the sink had before it, and how many
    backspaces the utterance began with, for a listener that missed them."""
    before = done.given[: len(done.given) - len(text)]
    return Typed(
        text=text,
        backspaces=done.backspaces if repeated else backspaces,
        by=by,
        final=done.final,
        offset=len(before),
        already=before if repeated else "",
    )
