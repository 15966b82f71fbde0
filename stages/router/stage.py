"""router: `transcript`s -> `keystrokes` or model `request`s, one utterance at a time,
in the order spoken.

Consumes: `transcript` from asr, one at a time (the next waits until keys has typed the
last piece of the one before); the pieces of a model's answer (`keystrokes` from
instruct and thinking); `voice` from vad (barge-in).
Produces: `keystrokes` for keys (dictation, each piece of an answer passed on, and an
empty final piece when an utterance types nothing, so every utterance is answered); a
`request` for the model stage of its mode; `cancel` for a chat or converse answer
being typed when the user speaks again (dictated and clarified speech is always typed),
and for every answer in progress when the user says a stop word ("cancel") or runs
`voxkey cancel`: the stop word is heard while it waits behind the answer, not after it,
and nothing more of a cancelled answer is passed on to keys.
What an utterance means (mode prefixes, "switch to X mode", commands) is
stages/router/meaning.py; how dictation is typed, stages/router/dictation.py. Partials
are typed ahead in dictation only, once they cannot become a command or a mode's name,
and are never erased. A long utterance cut in parts keeps the mode of its first part.
Guarantees: a transcript that comes again gets the decision it got the first time; the
mode, the document, the recent decisions and the conversation count survive a restart
(`RouterState`, the state file).
"""

from dataclasses import dataclass, field

from bus.delivery import piece_key
from bus.frames import Cancel, Frame, Keystrokes, Request, Transcript, Voice, now_ns
from bus.progress import RouterProgress
from bus.records import require
from bus.stage import Stage, StageError, mark
from bus.text import plain
from bus.wiring import MODEL_STAGES
from stages.router.dictation import Dictation, vocabularies
from stages.router.language import hearing, stop_words_of
from stages.router.meaning import decide, plainly_dictated
from stages.router.modewords import MODES

INTERRUPTIBLE = ("chat", "converse")  # answers new speech may cut short; what the user said never is
RECENT_DECISIONS = 20  # repeats only ever concern the utterances still in flight


@dataclass
class Parts:
    """A long utterance vad cut in parts: the mode of its first, and for a model the
    text heard so far (a model hears the utterance whole)."""

    mode: str
    text: str
    language: str = ""  # of the first part: the model answers in it


@dataclass
class Decided:
    """What was published for a transcript, remembered so that one that comes again is
    answered the same: keystrokes for keys, or a request for a model stage."""

    keystrokes: Keystrokes | None = None
    request: Request | None = None


@dataclass
class RouterState:
    """What the router keeps in its state file."""

    mode: str = ""  # the sticky mode; empty: the configured one
    typed: list[tuple[str, str]] = field(default_factory=list)  # the document (Dictation.typed)
    decided: dict[str, Decided] = field(default_factory=dict)  # by delivery key, the recent ones
    parts: Parts | None = None
    conversation: int = 0  # counted up on "new conversation"
    next_mode: str = ""  # a mode's name said on its own: the next utterance's mode
    # `voxkey mode`: speech that ended before the command was given keeps the mode before.
    mode_before: str = ""
    mode_since_ns: int = 0
    next_mode_until_ns: int = 0  # the next utterance must begin before this to take next_mode
    answering: dict[str, str] = field(default_factory=dict)  # utterance -> mode: requests not answered yet
    cancelled: list[str] = field(default_factory=list)  # the recent utterances whose answers were cancelled
    stops_heard: list[str] = field(default_factory=list)  # stop words taken as a cancel while they waited
    answer_ended_ns: int = 0  # when the last answer's final piece was passed on

    def check(self) -> None:
        modes = ("", *MODES)
        require(self.mode in modes and self.next_mode in modes and self.mode_before in modes, "mode is not a mode")
        require(all(mode in MODES for mode in self.answering.values()), "an answer's mode is not a mode")
        require(all(d.keystrokes or d.request for d in self.decided.values()), "a decision publishes nothing")


def typing(text: str, final: bool = True, **placed) -> Decided:
    return Decided(keystrokes=Keystrokes(text=text, final=final, **placed))


class Router(Stage):
    name = "router"
    sequential = (Transcript.TOPIC,)

    def setup(self) -> None:
        self.mode_words = {mode: set(words) for mode, words in self.settings["mode_words"].items()}
        self.stop_words = {plain(word) for word in self.settings["stop_words"]}
        saved = self.load_state(RouterState)
        self.mode = self._valid_mode(saved.mode or self.settings["mode"])
        self.document = Dictation(typed=saved.typed, words=vocabularies(self.settings.get("replacements", {})))
        self.decided = saved.decided
        self.parts = saved.parts
        # The model stages start chat and converse afresh when this number changes.
        self.conversation = saved.conversation
        # A mode's name said on its own ("Chat." then a pause vad ended the utterance at):
        # the mode of the next utterance, unless that one names its own.
        self.next_mode = saved.next_mode
        self.mode_before, self.mode_since_ns = saved.mode_before or self.mode, saved.mode_since_ns
        self.next_mode_until_ns = saved.next_mode_until_ns
        self.next_mode_ns = int(float(self.settings["next_mode_s"]) * 1e9)
        self.prefix_pause_ms = int(self.settings["prefix_pause_ms"])
        self.answering, self.cancelled, self.stops_heard = saved.answering, saved.cancelled, saved.stops_heard
        self.answer_ended_ns = saved.answer_ended_ns
        self.typing_answer: dict[str, str] = {}  # utterance id -> mode, while a model's answer is being typed
        self.heard: dict = {}  # the last utterance decided, for `voxkey status`: RouterProgress's heard_*
        self._set_mode(self.mode)
        if saved != RouterState():
            self.log.info("state restored", mode=self.mode, utterances=len(self.document.typed))

    def _save(self) -> None:
        self.decided = dict(list(self.decided.items())[-RECENT_DECISIONS:])
        self.cancelled = self.cancelled[-RECENT_DECISIONS:]
        self.stops_heard = self.stops_heard[-RECENT_DECISIONS:]
        self.save_state(
            RouterState(
                mode=self.mode,
                typed=self.document.typed,
                decided=self.decided,
                parts=self.parts,
                conversation=self.conversation,
                next_mode=self.next_mode,
                mode_before=self.mode_before,
                mode_since_ns=self.mode_since_ns,
                next_mode_until_ns=self.next_mode_until_ns,
                answering=self.answering,
                cancelled=self.cancelled,
                stops_heard=self.stops_heard,
                answer_ended_ns=self.answer_ended_ns,
            )
        )

    def _set_mode(self, mode: str) -> None:
        self.mode = self.state = mode
        self.progress = RouterProgress(
            mode=mode,
            **{f"heard_{name}": value for name, value in self.heard.items()},
            next_mode=self.next_mode,
            next_mode_until_ns=self.next_mode_until_ns if self.next_mode else 0,
        )

    def _valid_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise StageError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        return mode

    def on_control(self, command: str, args: dict) -> str:
        if command == "new-conversation":
            return self._new_conversation("control")
        if command == "cancel":
            cancelled = self._cancel_answers("voxkey cancel")
            return f"cancelled {len(cancelled)} answer(s)" if cancelled else "nothing to cancel"
        if command != "mode":
            return super().on_control(command, args)
        try:
            mode = self._valid_mode(str(args.get("mode", "")))
        except StageError as error:
            raise ValueError(str(error)) from None
        self.mode_before, self.mode_since_ns = self.mode, int(args.get("since_ns") or now_ns())
        self._set_mode(mode)
        self._save()
        self.log.info("mode set", mode=self.mode, by="control")
        return f"mode {self.mode}"

    def _new_conversation(self, by: str) -> str:
        self.conversation += 1
        self._save()
        self.log.info("new conversation", number=self.conversation, by=by)
        return f"new conversation ({self.conversation})"

    # --- transform ---

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Keystrokes):
            return self._pass_on_answer(frame)
        marks = mark(frame.marks, "router")
        key = frame.key or frame.utt  # a partial's key names how many words it holds
        if key not in self.decided:
            self.decided[key] = self.ahead(frame) if frame.body.partial else self.decision_for(frame)
            self._save()
        else:
            self.log.info("transcript heard again: same decision", utt=frame.utt)
        decided = self.decided[key]
        if decided.request:
            request = decided.request
            self.publish(request, utt=frame.utt, marks=marks, to=MODEL_STAGES[request.mode], key=frame.utt)
            return
        keystrokes = decided.keystrokes
        if keystrokes.final or keystrokes.text:
            self.publish(keystrokes, utt=frame.utt, marks=marks, key=piece_key(frame.utt, keystrokes.offset))

    def ahead(self, frame: Frame) -> Decided:
        """What to type of a partial: the words beyond those already typed, if the
        utterance is plainly dictation."""
        transcript: Transcript = frame.body
        if (
            self._mode_spoken_in(frame) != "dictate"
            or self.next_mode
            or transcript.part
            or self.parts
            or not plainly_dictated(transcript.text, self.mode_words, self.stop_words, hearing(transcript.language))
        ):
            return typing("", final=False)
        offset = len(self.document.text_of(frame.utt))
        edit = self.document.extend(frame.utt, transcript.text, hearing(transcript.language))
        self.log.info("typed ahead", utt=frame.utt, text=edit.text)
        return typing(edit.text, final=False, offset=offset)

    def decision_for(self, frame: Frame) -> Decided:
        """What to publish for a transcript (it is remembered)."""
        transcript: Transcript = frame.body
        if transcript.dropped or not transcript.text.strip():
            self.log.info("nothing to type", utt=frame.utt, dropped=transcript.dropped)
            self.heard = {"utt": frame.utt, "text": transcript.text.strip(), "dropped": transcript.dropped or "silence"}
            self._set_mode(self.mode)
            ahead = len(self.document.text_of(frame.utt))  # what partials typed stays
            return self._continued(transcript, "", frame.utt) or typing("", offset=ahead)
        continued = self._continued(transcript, transcript.text, frame.utt)
        if continued:
            return continued
        decision = decide(
            transcript.text,
            self._next_mode_for(frame) or self._mode_spoken_in(frame),
            self.mode_words,
            self.stop_words,
            pauses_ms=transcript.pauses_ms,
            min_pause_ms=self.prefix_pause_ms,
            stopping=self._something_to_stop(frame),
            languages=hearing(transcript.language),
        )
        self.next_mode = decision.next
        # A name said on its own picks the mode of the next utterance only if that one
        # follows soon: minutes later, the user has forgotten it.
        self.next_mode_until_ns = frame.marks.get("speech_end", now_ns()) + self.next_mode_ns if decision.next else 0
        self.log.info(
            "routed",
            utt=frame.utt,
            mode=decision.mode,
            sticky=decision.sticky,
            stop=decision.stop,
            text=decision.text,
            next=decision.next,
        )
        self.heard = {"utt": frame.utt, "text": transcript.text.strip(), "mode": decision.sticky or decision.mode}
        if decision.sticky:  # said in order: everything after it is in the new mode
            self.mode_since_ns = 0
        self._set_mode(decision.sticky or self.mode)
        if decision.sticky or decision.stop or decision.next:
            return typing("")
        if decision.new_conversation:
            self._new_conversation("voice")
            return typing("")
        if not transcript.last_part:
            self.parts = Parts(decision.mode, decision.text, transcript.language)
            if decision.mode != "dictate":  # a model hears the utterance whole, at its last part
                return typing("")
        return self._for_mode(decision.mode, decision.text, frame.utt, transcript.language)

    def _next_mode_for(self, frame: Frame) -> str:
        """The mode a name said on its own gave this utterance: "" if none was said, or
        this one began after it expired (by when it was said, not when it was heard)."""
        if not self.next_mode:
            return ""
        if frame.marks.get("speech_start", 0) <= self.next_mode_until_ns:
            return self.next_mode
        self.peer.counters["next_mode_expired"] += 1
        self.log.info("a mode said on its own expired", mode=self.next_mode, utt=frame.utt)
        return ""

    def _something_to_stop(self, frame: Frame) -> bool:
        """Whether a stop word in this utterance has something to stop: it was taken as a
        cancel while it waited, an answer is still in progress, or one was when it was said."""
        key = frame.key or frame.utt
        said_ns = frame.marks.get("speech_start", 0)
        return key in self.stops_heard or bool(self.answering) or (0 < said_ns < self.answer_ended_ns)

    def tick(self) -> float:
        """A stop word is heard while it waits behind the answer it stops: transcripts
        are taken one at a time, so handled in turn it would come after the answer."""
        if self.answering:
            for frame in self.waiting():
                body = frame.body
                if (
                    isinstance(body, Transcript)
                    and not (body.partial or body.dropped)
                    and plain(body.text) in self.stop_words | stop_words_of(hearing(body.language))
                    and (frame.key or frame.utt) not in self.stops_heard
                ):
                    self.stops_heard.append(frame.key or frame.utt)
                    self._cancel_answers("stop word")
        return super().tick()

    def _cancel_answers(self, reason: str) -> list[str]:
        """Cancel every answer in progress: the model stops before its next token, and
        nothing more of a chat or converse answer is passed on (its final piece still
        is, so keys closes it). A clarify stops rewriting and types what was said
        (stages/instruct.py): those pieces are the user's words, and go on."""
        cancelled = [utt for utt in self.answering if utt not in self.cancelled]
        for utt in cancelled:
            self.log.info("cancelling the answer", utt=utt, by=reason)
            self.publish(Cancel(reason=reason), utt=utt)
            self.typing_answer.pop(utt, None)
        self.cancelled += cancelled
        self.peer.counters["answers_cancelled"] += len(cancelled)
        self._save()
        return cancelled

    def _mode_spoken_in(self, frame: Frame) -> str:
        """The sticky mode an utterance was said in: a mode set by command applies to
        what is said after the command was given, not to speech that was waiting for
        the end of its pause, its recognition or a model ahead of it."""
        spoken_ns = frame.marks.get("speech_end", 0)
        return self.mode_before if spoken_ns and spoken_ns < self.mode_since_ns else self.mode

    def _continued(self, transcript: Transcript, text: str, utt: str) -> Decided | None:
        """A later part of a long utterance: the mode of its first part."""
        if not transcript.part or not self.parts:
            return None
        mode, language = self.parts.mode, self.parts.language
        if mode != "dictate":
            self.parts.text = f"{self.parts.text} {text.strip()}".strip()
            text = self.parts.text
        if transcript.last_part:
            self.parts = None
        elif mode != "dictate":
            return typing("")
        return self._for_mode(mode, text, utt, language) if text.strip() else typing("")

    def _for_mode(self, mode: str, text: str, utt: str, language: str) -> Decided:
        if mode == "dictate":
            offset = len(self.document.text_of(utt))  # what partials typed ahead
            edit = self.document.hear(text, utt, hearing(language))
            return typing(edit.text, backspaces=edit.backspaces, offset=offset, erases=edit.erases)
        request = Request(
            mode=mode, text=text, lead=self.document.lead(), conversation=self.conversation, language=language
        )
        self.answering[utt] = mode
        return Decided(request=request)

    def _pass_on_answer(self, frame: Frame) -> None:
        """A piece of a model's answer goes on to keys, at its place in the answer (keys
        types each place once, and never splices two different answers)."""
        piece: Keystrokes = frame.body
        known = self.document.text_of(frame.utt)
        if frame.utt in self.cancelled and self.answering.get(frame.utt) in INTERRUPTIBLE:
            if not piece.final:
                return  # generated before the cancel reached the model: never typed
            piece = Keystrokes(text="", final=True, offset=len(known))
        if piece.offset <= len(known):  # a piece that comes again is recorded once
            self.document.record(frame.utt, piece.text[len(known) - piece.offset :])
        if piece.final:
            self.typing_answer.pop(frame.utt, None)
            if self.answering.pop(frame.utt, None):
                self.answer_ended_ns = now_ns()
        elif piece.text and frame.utt in self.decided:
            self.typing_answer.setdefault(frame.utt, self.decided[frame.utt].request.mode)
        self._save()
        self.publish(
            Keystrokes(text=piece.text, final=piece.final, offset=piece.offset, by=frame.src),
            utt=frame.utt,
            marks=frame.marks,
            key=piece_key(frame.utt, piece.offset),
        )

    def signal(self, frame: Frame) -> None:
        """New speech while a chat or converse answer is being typed cuts it short (what
        was typed stays). An answer not begun yet is not cut: the user would get none,
        only because the model was slow to start or restarting."""
        if not isinstance(frame.body, Voice) or not frame.body.live:
            return  # in a replay faster than speech there is no "while"
        for utt, mode in list(self.typing_answer.items()):
            if mode in INTERRUPTIBLE:
                self.log.info("barge-in: cancelling the answer", utt=utt)
                self.publish(Cancel(reason="new speech"), utt=utt)
                del self.typing_answer[utt]
