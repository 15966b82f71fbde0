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
place in an utterance's output is typed once: a piece is handed to the sink in chunks
of `chunk_chars` (stages/keys/chunks.py), and how far each utterance was typed, and
what its sink was given, is written to the state file before each chunk is pressed, so
a piece that comes again (after a restart anywhere) types only what is still missing,
and is reported again with what the sink already had (`Typed.already`), for a
listener that missed the first report. A piece that disagrees with what was
already typed at its place (a model answer regenerated differently after a crash) is
never spliced in: what was typed stays, nothing more is typed for that utterance, and
the log and the counter `answers_regenerated_differently` say so.
Nothing lands late in the wrong place: an utterance whose first key would be pressed
more than `max_age_s` after its end of speech (`speech_end`; the user may be in another
window by now) is held, not typed: kept in the state file with the rest of its pieces
as they come, reported (`Typed.held`, the log without its text, `KeysProgress.held` in a
heartbeat sent at once) and acknowledged, so the pipeline goes on. `voxkey held`
(the `held` control command) lists, types, copies or drops what is held. Speech said
while the models were still loading is judged by the same rule: typed if it is
typed soon enough after it was said, held if not. A "scratch that" of a held
utterance erases nothing (nothing of it reached the app) and drops it from what is held.
Crash windows: killed after typing but before acknowledging, nothing is lost or
doubled: the router sends the piece again and it is reported, not typed. Killed while
the sink types a chunk, that chunk alone is in doubt: it is not typed again (keys
cannot ask the sink what it got, and a doubled chunk is worse than a cut one), the
rest of the piece is typed when it comes again, and the utterance's reports say how
many characters are in doubt (`Typed.in_doubt`; the log and the counter
`chunks_in_doubt` too). "Scratch that" counts them as not on screen.
"""

from dataclasses import dataclass, field, replace

from bus.frames import Frame, Keystrokes, Typed, now_ns
from bus.progress import KeysProgress
from bus.records import require
from bus.stage import Stage, StageError, mark
from bus.text import safe_text
from stages.keys.choice import open_sink
from stages.keys.chunks import chunked
from stages.keys.clipboard import copy_text
from stages.keys.sinks import SinkError, SinkUnavailable

# As many as "scratch that" can reach back through (the router's Dictation.memory).
RECENT_UTTERANCES = 100
HELD_COMMANDS = ("list", "type", "copy", "drop")


@dataclass
class Typing:
    """How far one utterance was typed."""

    source: str = ""  # the producer's text received so far (offsets count in it), typed or held
    given: str = ""  # what the sink was given for it (the source made safe)
    backspaces: int = 0  # erased before its text
    erased: bool = False  # its backspaces were pressed (or, held, never will be)
    final: bool = False  # its last piece was typed (or held)
    diverged: bool = False  # a piece came again different: nothing more is typed
    typing: int = 0  # characters at the end of `given` the sink is typing now; 0 once it returned
    doubt: int = 0  # characters of `given` keys was killed while typing: the app may lack some
    held: bool = False  # the text of `source` from `held_from` on is kept, not typed
    held_from: int = 0
    said_ns: int = 0  # its end of speech (monotonic ns): how long ago it was said
    by: str = ""  # whose words it is, for the report when held text is typed
    dropped: bool = False  # held, then dropped (`voxkey held drop`): nothing more of it is typed or kept

    @property
    def begun(self) -> bool:
        """Whether a key was pressed for it: until then it is judged by its age."""
        return bool(self.given or self.backspaces)

    @property
    def held_text(self) -> str:
        return safe_text(self.source[self.held_from :], allow_newlines=True) if self.held else ""


def on_screen(typed: dict[str, Typing], utt: str) -> int:
    """How many characters of an utterance reached the app (0 for one keys never typed,
    held, or no longer remembers): as many as "scratch that" may erase of it. Characters
    in doubt are not counted: erasing them when they never arrived would erase the
    user's own text before them."""
    done = typed.get(utt)
    return max(0, len(done.given) - done.doubt) if done else 0


def still_to_type(strokes: Keystrokes, done: Typing) -> tuple[int, str, bool]:
    """What of a keystrokes frame is not typed yet: (backspaces, text, agrees), where
    `agrees` is False when the frame contradicts what was already typed at its place."""
    known = done.source[strokes.offset : strokes.offset + len(strokes.text)]
    agrees = strokes.offset <= len(done.source) and strokes.text.startswith(known)
    backspaces = 0 if done.erased else strokes.backspaces
    return backspaces, strokes.text[len(known) :] if agrees else "", agrees


def said_ago(said_ns: int, now: int) -> str:
    """ "said 14 s ago": how old held speech is, without its words."""
    return f"said {max(0, round((now - said_ns) / 1e9))} s ago"


@dataclass
class KeysState:
    """What keys keeps in its state file: how far each recent utterance was typed, and
    every utterance held."""

    typed: dict[str, Typing] = field(default_factory=dict)

    def check(self) -> None:
        require(all(done.backspaces >= 0 for done in self.typed.values()), "backspaces must not be negative")
        require(all(0 <= done.held_from <= len(done.source) for done in self.typed.values()), "held text out of range")


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
        self.chunk_chars = int(self.settings["chunk_chars"])
        self.max_age_ns = int(float(self.settings["max_age_s"]) * 1e9)
        self.state = self.sink.name
        self.progress = KeysProgress(sink=self.sink.name, reason=self.sink.reason)
        self.log.info("typing sink", sink=self.sink.name, reason=self.sink.reason)
        self.done: dict[str, Typing] = self.load_state(KeysState).typed
        for utt, done in self.done.items():
            if done.typing:  # the last process was killed while its sink typed this
                self.peer.counters["chunks_in_doubt"] += 1
                self.log.warning(
                    "killed while typing: one chunk may be missing or cut short in the app (not typed again)",
                    utt=utt,
                    characters=done.typing,
                )
                done.doubt, done.typing = done.doubt + done.typing, 0
        self._held_changed()

    def handle(self, frame: Frame) -> None:
        strokes: Keystrokes = frame.body
        by = strokes.by or frame.src
        done = self.done.setdefault(frame.utt, Typing())
        if done.final:  # typed (or held) whole before: reported again, typing nothing
            self.publish(self._report(done, "", by, repeated=True), utt=frame.utt, marks=frame.marks)
            return
        backspaces, text, agrees = still_to_type(strokes, done)
        if strokes.erases:
            backspaces = min(backspaces, on_screen(self.done, strokes.erases))
            self._scratch_held(strokes.erases)
        if not agrees and not done.diverged:
            done.diverged = True
            self.peer.counters["answers_regenerated_differently"] += 1
            self.log.warning(
                "piece disagrees with what was typed: keeping what was typed, typing no more of it",
                utt=frame.utt,
                offset=strokes.offset,
                typed=len(done.source),
            )
        if done.diverged or done.dropped:
            done.final = strokes.final
            done.source += text if done.dropped else ""  # its place is taken: a resend adds nothing
            self._save()
            self.publish(self._report(done, "", by, repeated=True), utt=frame.utt, marks=frame.marks)
            return
        if done.held or self._too_late(frame, done, backspaces, text):
            self._hold(frame, done, strokes, text, by)
            return
        repeated = strokes.offset < len(done.source)
        marks = mark(frame.marks, "first_key")
        erased, reached, error = self._press(frame.utt, done, backspaces, text, strokes.final)
        typed = replace(self._report(done, reached, by, repeated, erased), error=error)
        self.publish(typed, utt=frame.utt, marks=mark(marks, "last_key"))
        self.progress = last_typed(self.progress, frame.utt, done, by, marks, typed.error)

    def _press(
        self, utt: str, done: Typing, backspaces: int, text: str, final: bool, held: bool = False
    ) -> tuple[int, str, str]:
        """Types `text` (the producer's, after `backspaces`) for an utterance, chunk by
        chunk; returns what reached the app, (backspaces, text), and the error that
        stopped it. `held`: the text is the utterance's held text, already in its source."""
        erased_all, reached_all, error = 0, "", ""
        pieces = chunked(text, self.chunk_chars) or [""]
        for index, piece in enumerate(pieces):
            press = backspaces if index == 0 else 0
            safe = safe_text(piece, allow_newlines=True)
            given = done.given
            # Written down before the keys are pressed: killed while the sink types it,
            # this chunk alone is in doubt, and is not typed twice.
            if held:
                done.held_from += len(piece)
            else:
                done.source += piece
            done.given += safe
            done.backspaces += press
            done.erased = True
            done.final = final and index == len(pieces) - 1  # or a resend would skip the rest
            done.typing = len(safe)
            self._save()
            try:
                got = self.sink.type(press, safe) or (press, safe)
            except Exception as failure:  # whatever a sink raises, the user hears that typing failed
                self.peer.counters["sink_errors"] += 1
                error = sink_failure(self.sink.name, failure)
                self.log.error("typing failed", utt=utt, error=error)
                # What reached the app, when the sink knows; otherwise nothing is counted as typed.
                got = failure.reached if isinstance(failure, SinkError) else (0, "")
                if held and not got[1]:  # held text stays held until it reached the app
                    done.held_from -= len(piece)
                elif not held:  # a failed piece is reported, not typed later
                    done.source += "".join(pieces[index + 1 :])
                    done.final = final
            done.typing = 0
            if got != (press, safe):  # only what reached the app counts
                done.given, done.backspaces = given + got[1], done.backspaces - press + got[0]
            erased_all, reached_all = erased_all + got[0], reached_all + got[1]
            if error:
                break
        if held and done.held_from >= len(done.source):
            done.held = False  # typed whole: what follows of it is typed as it comes
        self._save()
        return erased_all, reached_all, error

    # --- held utterances ---------------------------------------------------------

    def _too_late(self, frame: Frame, done: Typing, backspaces: int, text: str) -> bool:
        """Whether an utterance's first key would be pressed too long after it was said.
        Only its first keys are judged: an utterance typing in time goes on."""
        said = frame.marks.get("speech_end", 0)
        if done.begun or not (text or backspaces) or not self.max_age_ns or not said:
            return False
        return now_ns() - said > self.max_age_ns

    def _hold(self, frame: Frame, done: Typing, strokes: Keystrokes, text: str, by: str) -> None:
        """Keeps a piece instead of typing it. Its backspaces are never pressed: they
        would erase from whatever window has the focus now."""
        first = not done.held
        if first:
            done.held, done.held_from, done.said_ns, done.by = True, len(done.source), frame.marks["speech_end"], by
        done.source += text
        done.erased = True
        done.final = strokes.final
        late = said_ago(done.said_ns, now_ns())
        if first and not done.held_text:  # only an erase came late: nothing to keep, nothing pressed
            done.held = done.held and not done.final
            self.peer.counters["erases_too_late"] += 1
            self.log.warning("erase said too long ago: not pressed", utt=frame.utt, max_age_s=self.max_age_ns / 1e9)
        elif first:
            self.peer.counters["utterances_held"] += 1
            self.log.warning(
                "utterance held, not typed: said too long ago to type blindly (voxkey held type|copy|drop)",
                utt=frame.utt,
                said_s_ago=round((now_ns() - done.said_ns) / 1e9, 1),
                max_age_s=self.max_age_ns / 1e9,
            )
            self._held_changed(late)
        self._save()
        typed = self._report(done, "", by, repeated=True)
        self.publish(replace(typed, held=typed.held or f"{late}: not erased"), utt=frame.utt, marks=frame.marks)

    def _scratch_held(self, utt: str) -> None:
        """ "Scratch that" of a held utterance: it never reached the app, so nothing is
        erased, and what the user took back is not typed later either."""
        done = self.done.get(utt)
        if done and done.held_text:
            done.held, done.dropped = False, True
            self.peer.counters["held_scratched"] += 1
            self.log.info("held utterance scratched: dropped", utt=utt)
            self._held_changed()

    def held(self) -> dict[str, Typing]:
        """The utterances with text held, in the order they came."""
        return {utt: done for utt, done in self.done.items() if done.held_text}

    def _held_changed(self, why: str = "") -> None:
        """Progress says how many are held (announced at once, as any new progress:
        the user must hear of it now)."""
        held = self.held()
        oldest = min((done.said_ns for done in held.values()), default=0)
        newest = max((done.said_ns for done in held.values()), default=0)
        reason = why or (said_ago(newest, now_ns()) if held else "")
        self.progress = replace(self.progress, held=len(held), held_said_ns=oldest, held_reason=reason)

    def on_control(self, command: str, args: dict):
        if command == "held":
            return self.on_held(str(args.get("how", "list")), bool(args.get("show", False)))
        return super().on_control(command, args)

    def on_held(self, how: str, show: bool) -> dict:
        """`voxkey held`: list what is held (its text only with `show`), type it into the
        focused window now, copy it to the clipboard, or drop it. Replies with the list
        of what was held, and what was done."""
        if how not in HELD_COMMANDS:
            raise ValueError(f"held: unknown action {how!r}: use {', '.join(HELD_COMMANDS)}")
        held, now = self.held(), now_ns()
        listed = [
            {
                "utt": utt,
                "said_s_ago": round((now - done.said_ns) / 1e9, 1),
                "characters": len(done.held_text),
                "complete": done.final,
                **({"text": done.held_text} if show else {}),
            }
            for utt, done in held.items()
        ]
        if how == "list":
            return {"held": listed, "done": ""}
        self.log.info("held utterances", action=how, utterances=len(held))
        try:
            return {"held": listed, "done": self._deal_with_held(how, held)}
        finally:  # also when it failed midway: what was done is kept, and told
            self._save()
            self._held_changed()

    def _deal_with_held(self, how: str, held: dict[str, Typing]) -> str:
        if how == "type":
            return self._type_held(held)
        if how == "copy" and held:
            text = "".join(done.held_text for done in held.values())
            try:
                session = copy_text(text)
            except SinkError as error:
                raise ValueError(f"nothing copied, still held: {error}") from None
            for done in held.values():  # what comes later of an answer not yet complete is held anew
                done.held_from, done.held = len(done.source), not done.final
            return f"copied {len(text)} characters to the {session} clipboard"
        if how == "drop":
            for done in held.values():
                done.held, done.dropped = False, True
            return f"dropped {len(held)}"
        return ""

    def _type_held(self, held: dict[str, Typing]) -> str:
        """Types each held utterance now, as if it had just come, and reports it."""
        errors = []
        for utt, done in held.items():
            self.done[utt] = self.done.pop(utt)  # typed last now: "scratch that" reaches it first
            marks = {"speech_end": done.said_ns, "first_key": now_ns()}
            erased, reached, error = self._press(utt, done, 0, done.source[done.held_from :], done.final, held=True)
            typed = replace(self._report(done, reached, done.by, False, erased), error=error)
            self.publish(typed, utt=utt, marks=mark(marks, "last_key"))
            self.progress = last_typed(self.progress, utt, done, done.by, marks, error)
            if error:
                errors.append(error)
                break
        typed_count = len(held) - len(self.held())
        if errors:
            raise ValueError(f"typed {typed_count} of {len(held)}; the rest is still held: {errors[0]}")
        return f"typed {typed_count}"

    def _report(self, done: Typing, text: str, by: str, repeated: bool, backspaces: int = 0) -> Typed:
        held = said_ago(done.said_ns, now_ns()) if done.held else ""
        return replace(report(done, text, by, repeated, backspaces), held=held)

    def _save(self) -> None:
        # Held utterances are kept whatever their age: nothing said is lost.
        recent = set(list(self.done)[-RECENT_UTTERANCES:])
        self.done = {utt: done for utt, done in self.done.items() if utt in recent or done.held_text}
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
        in_doubt=done.doubt,
    )
