"""vad: `audio` -> `speech` utterances, with Silero VAD v6 streaming.

Consumes: `stream-start`, `audio` (any frame size; processed in 32 ms windows) and
`stream-stop` from capture.
Produces: one `speech` frame per utterance, handed over reliably to asr -- its audio
with a pre-roll before onset and a post-roll after the last speech -- marked with the
capture times of its first and last speech (`speech_start`, `speech_end`) and of the
VAD's decision (`vad`), and where in the stream its speech began and ended; a
`guess` (unreliable) at the first pause as long as the post-roll, holding the audio the
utterance will have if that pause is its end, and with partials on, the audio so far
of speech that goes on; a `voice` frame the moment speech begins (barge-in is the
router's to decide); in its heartbeat, how many utterances the stream held so far and
whether it has ended (a replay counts them off).
Cheap when idle: while no speech goes on, windows wait until `silent_batch_ms` of them
have come and are judged together, and each batch judged is acknowledged to capture at
once (capture gathers its frames while it hears such acknowledgements); once speech has
begun, each window is judged the moment it arrives. The windows and their order, and so
what is cut, are the same either way: only the onset may be heard a batch later.
Guarantees: Silero's recurrent state and context carry from window to window (true
streaming); an utterance longer than `max_utterance_s` is cut at its quietest point
and sent in parts; bursts shorter than `min_speech_ms` are not sent.
Across a restart: the utterances asr has not acknowledged (each in a file of its own,
written once when it is cut and removed when asr acknowledges it), and the sample from
which the audio is still needed (the state file), are written down before capture is
told it may forget the audio before that sample; a restarted vad sends those
utterances again and takes the stream up at that sample from capture's re-sent audio.
Bounded: while the utterances asr has not acknowledged hold `max_held_s` of audio or
more (downstream stalled), new speech is refused -- heard, counted and reported, not
kept -- and everything already taken stays until it is acknowledged (`Vad._hold`).
"""

import hashlib
from collections import deque
from dataclasses import dataclass

import numpy as np

from bus import models
from bus import state as persistence
from bus.delivery import freeze, thaw
from bus.frames import (
    SAMPLE_RATE,
    AudioChunk,
    Frame,
    FrameRejected,
    Guess,
    Speech,
    StreamStart,
    StreamStop,
    Voice,
    now_ns,
)
from bus.progress import VadProgress
from bus.records import RecordError, require
from bus.stage import Stage, StageError
from bus.wiring import consumer_of
from stages.vad.segmenting import WINDOW, Segmenter, StreamingSilero, Utterance, silero_path, utterance_id

HELD_FILES = "vad.held-*.state.json"  # one per utterance asr has not acknowledged


@dataclass
class VadState:
    """What vad keeps in its state file: where its stream stands, and the utterances asr
    has not acknowledged (frozen frames, bus/delivery.py), so none is lost in a crash."""

    stream: str = ""
    live: bool = True
    ended: bool = False
    utterances: int = 0
    resume_at: int = 0  # the first sample vad still needs from capture

    def check(self) -> None:
        require(self.utterances >= 0 and self.resume_at >= 0, "utterances and resume_at are counts")


@dataclass
class HeldSpeech:
    """One utterance asr has not acknowledged (a frozen frame, bus/delivery.py), in a file
    of its own (`vad.held-DIGEST.state.json`, so a new session's sweep of state files
    takes it too): written once when it is cut and removed when it is acknowledged,
    where one state file holding every utterance was rewritten whole twice a second
    while audio flowed -- megabytes a second once downstream stalled."""

    frame: str = ""

    def check(self) -> None:
        try:
            thaw(self.frame)
        except (FrameRejected, ValueError) as error:
            raise RecordError(f"holds no frame ({error})") from None


class Vad(Stage):
    name = "vad"
    # The audio vad no longer needs is acknowledged by its first sample.
    by_position = (StreamStart.TOPIC, AudioChunk.TOPIC, StreamStop.TOPIC)

    def setup(self) -> None:
        try:
            path = silero_path()
        except models.ModelError as error:
            raise StageError(str(error)) from None
        self.model = StreamingSilero(path)
        self.pre_roll = int(self.settings["pre_roll_ms"]) * SAMPLE_RATE // 1000
        self.ack_every = SAMPLE_RATE // 2  # acknowledging audio writes the state file: twice a second at most
        self.silent_batch = max(1, round(int(self.settings["silent_batch_ms"]) * SAMPLE_RATE / 1000 / WINDOW))
        # Held audio is bounded: it lives in vad's memory and, written down, in the run
        # directory, which is RAM (tmpfs) on the Pi, shared with every stage's state and logs.
        self.max_held = int(float(self.settings["max_held_s"]) * SAMPLE_RATE)
        self.refused_ms = 0  # speech refused in this process, for its progress
        saved = self.load_state(VadState)
        self.stream = saved.stream
        self.live = saved.live
        self.ended = saved.ended
        self.utterances = saved.utterances
        self.acknowledged = saved.resume_at
        # After a restart the stream is taken up where audio is still needed: capture sends
        # again, in order, everything from there (what it sent the old process is dropped).
        self._new_stream_state(self.acknowledged)
        held = [persistence.load(path, HeldSpeech, self.log) for path in sorted(self._held_dir().glob(HELD_FILES))]
        self.delivery.restore([thaw(record.frame) for record in held if record.frame])
        if saved != VadState() or held:
            self.log.info("state restored", stream=self.stream, resume_at=self.acknowledged, pending=len(held))
        self._hold()
        self._publish_progress()

    def _new_stream_state(self, offset: int) -> None:
        keys = (
            "threshold",
            "end_of_speech_ms",
            "pre_roll_ms",
            "post_roll_ms",
            "min_speech_ms",
            "max_utterance_s",
            "guess",
            "partial_every_ms",
            "partial_after_s",
        )
        refusing = getattr(self, "segmenter", Segmenter()).refusing  # a new stream does not lift it
        self.segmenter = Segmenter(**{key: self.settings[key] for key in keys}, refusing=refusing)
        self.model.reset()
        self.pending = np.zeros(0, np.int16)  # audio not judged yet, from next_offset on
        self.arrived: deque = deque()  # (end, capture mark) of the frames `pending` came in
        self.next_offset = offset

    # --- audio in ---

    def handle(self, frame: Frame) -> None:
        body = frame.body
        if isinstance(body, StreamStart):
            return self._start(body)
        if isinstance(body, StreamStop):
            return self._stop(body)
        if len(frame.payload) % 2:
            raise FrameRejected("bad_payload", "audio payload is not whole int16 samples")
        if body.stream != self.stream:
            self.log.warning("audio of a stream never started: taking it up", stream=body.stream)
            self._start(StreamStart(stream=body.stream, offset=body.offset))
        expected = self.next_offset + len(self.pending)
        samples = np.frombuffer(frame.payload, "<i2")
        if body.offset + len(samples) <= expected:
            return  # capture sent it again; we have it
        if body.offset < expected:  # partly: a restarted vad resumes mid-frame
            samples = samples[expected - body.offset :]
        elif body.offset > expected:
            self.peer.counters["audio_gaps"] += 1
            self.log.warning("audio gap", missing_samples=body.offset - expected)
            self.pending = np.zeros(0, np.int16)
            self.arrived.clear()
            self.next_offset = body.offset
        self._listen(samples, frame.marks.get("capture", now_ns()))

    def _listen(self, samples: np.ndarray, captured_ns: int) -> None:
        self.pending = np.concatenate([self.pending, samples])
        self.arrived.append((self.next_offset + len(self.pending), captured_ns))
        # Silence is judged a batch at a time (one wake, the model's weights still in the
        # cache); speech, window by window as it arrives, so its end is never judged later.
        if self.segmenter.in_speech or len(self.pending) >= self.silent_batch * WINDOW:
            self._judge()

    def _judge(self) -> None:
        """Run every whole window waiting through Silero and the segmenter."""
        refused = self.segmenter.refused_windows
        judged = len(self.pending) // WINDOW * WINDOW
        scaled = self.pending[:judged].astype(np.float32) / 32768.0
        for start in range(0, judged, WINDOW):
            window = self.pending[start : start + WINDOW]
            captured_ns = self._captured_ns(self.next_offset + WINDOW)
            prob = self.model(scaled[start : start + WINDOW])
            was_speaking = self.segmenter.in_speech
            for utterance in self.segmenter.push(window, prob, self.next_offset, captured_ns):
                self._send(utterance)
            if self.segmenter.in_speech and not was_speaking:
                self.publish(
                    Voice(stream=self.stream, offset=self.segmenter.start_sample, live=self.live),
                    marks={"capture": captured_ns},
                )
            if self.segmenter.in_speech != was_speaking:
                self._publish_progress()  # two beats an utterance: an indicator shows "hearing"
            self.next_offset += WINDOW
        self.pending = self.pending[judged:]
        if self.segmenter.refused_windows > refused:
            refused_ms = (self.segmenter.refused_windows - refused) * WINDOW * 1000 // SAMPLE_RATE
            self.peer.counters["speech_refused_ms"] += refused_ms
            self.refused_ms += refused_ms
            self._publish_progress()
        # While silent, each batch judged is acknowledged: capture takes that as its cue
        # that it may gather audio into larger frames (stages/capture/stage.py).
        if self._needed_from() - self.acknowledged >= min(self.ack_every, self.silent_batch * WINDOW):
            self._acknowledge_audio()

    def _captured_ns(self, end: int) -> int:
        """When the sample before `end` was captured: its frame's mark, less the time of
        the samples after it in that frame (a frame holds several windows)."""
        while self.arrived and self.arrived[0][0] < end:
            self.arrived.popleft()
        if not self.arrived:
            return now_ns()
        frame_end, captured_ns = self.arrived[0]
        return captured_ns - (frame_end - end) * 1_000_000_000 // SAMPLE_RATE

    def _start(self, start: StreamStart) -> None:
        if start.stream == self.stream:
            return  # the stream this vad was taking up again
        self.stream, self.live, self.ended, self.utterances = start.stream, start.live, False, 0
        self.acknowledged = start.offset
        self._new_stream_state(start.offset)
        self._acknowledge_audio()

    def _stop(self, stop: StreamStop) -> None:
        if stop.stream != self.stream or self.ended:
            return
        self._judge()  # what waits for a whole batch is the stream's last audio
        for utterance in self.segmenter.flush():
            self._send(utterance)
        self.ended = True
        self.next_offset = stop.samples + 1
        self._acknowledge_audio()

    # --- utterances out ---

    def _send(self, utterance: Utterance) -> None:
        utt = utterance_id(self.stream, utterance.start_sample)
        marks = {"speech_start": utterance.speech_start_ns, "speech_end": utterance.speech_end_ns, "vad": now_ns()}
        payload = utterance.audio.astype("<i2").tobytes()
        if utterance.guess:
            # Unreliable by design: a guess lost or late costs only the time it would have saved.
            self.publish(
                Guess(self.stream, utterance.start_sample, utterance.part, utterance.ongoing),
                utt=utt,
                marks=marks,
                payload=payload,
            )
            self.peer.counters["partial_guesses" if utterance.ongoing else "guesses"] += 1
            return
        body = utterance.speech(self.stream)
        asr = consumer_of(self.name, Speech.TOPIC)
        frame = Frame(body, self.name, utt=utt, marks=marks, payload=payload, to=asr, key=utt)
        self.delivery.put(frame, send=False)  # first: it gives the frame its position, which is frozen with it
        # Written down before capture may forget its audio and before it leaves: a crash
        # cannot lose it. (Cut again after a crash before the state file says so, it has
        # the same id and the same file, and goes once.)
        persistence.save(self._held_path(utt), HeldSpeech(freeze(frame)))
        self.utterances += 1
        self.log.info("utterance", utt=utt, seconds=round(len(utterance.audio) / SAMPLE_RATE, 2), part=utterance.part)
        self._hold()
        self._acknowledge_audio()
        self.delivery.flush("asr")

    def on_acknowledged(self, frames: list[Frame]) -> None:
        for frame in frames:
            self._held_path(frame.utt).unlink(missing_ok=True)
        self._hold()

    # --- how much is held ---

    def _hold(self) -> None:
        """Refuse new speech while what asr has not acknowledged holds `max_held_s` of audio.

        The bound is kept at the door, not by dropping: every utterance taken stays held
        (and written down) until it is acknowledged, however long downstream takes,
        since dropping one, oldest or newest, would lose words voxkey had taken. Not
        taking new speech loses words too, but openly: the log, a counter, vad's
        progress and state (`voxkey status`) say so while it lasts. Holding new speech
        elsewhere would only move the growth (capture drops a microphone's audio past
        `retain_s` anyway). Speech already begun is taken to its end, parts and all, so
        held audio may pass the bound by the utterance in progress."""
        held = sum(len(frame.payload) for frame in self.delivery.pending(consumer_of(self.name, Speech.TOPIC))) // 2
        full = held >= self.max_held
        if full == self.segmenter.refusing:
            return
        self.segmenter.refusing = full
        if full:
            self.peer.counters["speech_refusals"] += 1
            self.log.error(
                "downstream stalled: new speech is refused",
                held_s=round(held / SAMPLE_RATE, 1),
                utterances=self.delivery.count(consumer_of(self.name, Speech.TOPIC)),
                fix="see which stage does not get on (voxkey status, its log): asr, router or keys; "
                "or raise stages.vad.max_held_s",
            )
        else:
            self.log.info("speech taken again", held_s=round(held / SAMPLE_RATE, 1), refused_ms=self.refused_ms)
        self.state = "refusing speech: downstream stalled" if full else "running"
        self._publish_progress()

    def _held_dir(self):
        return persistence.path_for(self.config, self.name).parent

    def _held_path(self, key: str):
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]  # ids hold a stream's name: not a file name
        return self._held_dir() / HELD_FILES.replace("*", digest)

    # --- what capture may forget ---

    def _needed_from(self) -> int:
        """The first sample still needed: the open utterance's, or the next window's,
        less a pre-roll (a restart must see the silence before the next onset)."""
        if self.ended:
            return self.next_offset  # past the stop: nothing more is needed
        start = self.segmenter.start_sample if self.segmenter.in_speech else self.next_offset
        return max(self.acknowledged, start - self.pre_roll - WINDOW)

    def _acknowledge_audio(self) -> None:
        # Written down before capture hears it: after a crash in between, capture still
        # has the audio, and the restarted vad skips what it already cut.
        self.acknowledged = self._needed_from()
        self._save()
        self.delivery.acknowledge_through("capture", AudioChunk.TOPIC, self.acknowledged)
        self._publish_progress()

    def _save(self) -> None:
        self.save_state(
            VadState(
                stream=self.stream,
                live=self.live,
                ended=self.ended,
                utterances=self.utterances,
                resume_at=self.acknowledged,
            )
        )

    def _publish_progress(self) -> None:
        self.progress = VadProgress(
            stream=self.stream,
            utterances=self.utterances,
            ended=self.ended,
            refusing="downstream stalled: vad holds as much speech as stages.vad.max_held_s allows"
            if self.segmenter.refusing
            else "",
            refused_ms=self.refused_ms,
            speaking=self.segmenter.in_speech,
        )
