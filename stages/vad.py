"""vad: `audio` frames -> `speech` utterances, with Silero VAD v6 streaming.

Consumes: `audio` (any frame size; processed in 32 ms windows), `end`; `typed` and
`end` from keys (acknowledgements); every downstream stage's heartbeat.
Produces: one `speech` frame per utterance -- its audio with a pre-roll before onset
and a post-roll after the last speech -- marked with the capture times of its first
and last speech (`speech_start`, `speech_end`) and of the VAD's decision (`vad`);
then `end`, after flushing any utterance still open. `cancel` when the user speaks
again while an utterance is still being answered (barge-in).
Guarantees: Silero's recurrent state and context carry from window to window (true
streaming); an utterance longer than `max_utterance_s` is cut at its quietest point
and sent in parts; bursts shorter than `min_speech_ms` are not sent.
Delivery: one utterance is in flight at a time and stays here until keys says it was
typed; if a stage downstream restarts meanwhile, it is sent again (every stage after
this one is idempotent per utterance id). The heartbeat's `progress.committed` tells
capture which audio is no longer needed, so after a restart of this stage capture
re-sends the rest, and the ids of utterances already typed are remembered on disk.
"""

import os
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import onnxruntime

from bus import state as persistence
from bus.frames import SAMPLE_RATE, AudioChunk, Cancel, EndOfStream, Frame, FrameRejected, Speech, Typed, now_ns
from bus.stage import Stage, StageError, main

WINDOW = 512  # Silero v6 at 16 kHz
CONTEXT = 64
# Once speech has begun it continues while the probability stays above this much
# below the onset threshold (hysteresis, as in Silero's own iterator).
HYSTERESIS = 0.15
RECENT = 20  # utterances remembered across a restart


def silero_path() -> str:
    import faster_whisper

    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


class StreamingSilero:
    """Silero VAD that keeps its LSTM state and audio context between calls."""

    def __init__(self, path: str):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        self.session = onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)

    def __call__(self, window: np.ndarray) -> float:
        """Speech probability of one 512-sample float32 window."""
        batch = np.concatenate([self.context, window])[None, :]
        prob, self.h, self.c = self.session.run(None, {"input": batch, "h": self.h, "c": self.c})
        self.context = window[-CONTEXT:]
        return float(prob.ravel()[0])


@dataclass
class Utterance:
    audio: np.ndarray  # int16
    start_sample: int
    speech_start_ns: int
    speech_end_ns: int
    part: int = 0
    last_part: bool = True


@dataclass
class Segmenter:
    """Turns (window, speech probability) pairs into utterances. Pure: no I/O, no model."""

    threshold: float = 0.5
    end_of_speech_ms: int = 600
    pre_roll_ms: int = 300
    post_roll_ms: int = 200
    min_speech_ms: int = 250
    max_utterance_s: float = 28.0
    _pre_roll: deque = field(default_factory=deque, init=False)
    _windows: list = field(default_factory=list, init=False)
    _probs: list = field(default_factory=list, init=False)
    in_speech: bool = field(default=False, init=False)
    start_sample: int = field(default=0, init=False)
    _speech_windows: int = field(default=0, init=False)
    _last_speech: int = field(default=-1, init=False)
    _speech_start_ns: int = field(default=0, init=False)
    _speech_end_ns: int = field(default=0, init=False)
    _part: int = field(default=0, init=False)

    def __post_init__(self):
        self._pre_roll = deque(maxlen=_windows_in(self.pre_roll_ms))

    def push(self, window: np.ndarray, prob: float, offset: int, captured_ns: int) -> list[Utterance]:
        """Feed one window that starts at sample `offset`; returns utterances completed by it."""
        if not self.in_speech:
            if prob < self.threshold:
                self._pre_roll.append(window)
                return []
            self._open(offset, captured_ns)
        self._windows.append(window)
        self._probs.append(prob)
        if prob >= self.threshold - HYSTERESIS:
            self._last_speech = len(self._windows) - 1
            self._speech_windows += 1
            self._speech_end_ns = captured_ns
        silent = len(self._windows) - 1 - self._last_speech
        if silent >= max(1, _windows_in(self.end_of_speech_ms)):
            return self._close()
        if len(self._windows) * WINDOW >= self.max_utterance_s * SAMPLE_RATE:
            return [self._split()]
        return []

    def flush(self) -> list[Utterance]:
        """End of stream: whatever speech is open is complete."""
        done = self._close() if self.in_speech else []
        self._pre_roll.clear()
        return done

    def _open(self, offset: int, captured_ns: int) -> None:
        self._windows = list(self._pre_roll)
        self._probs = [0.0] * len(self._windows)
        self.start_sample = offset - len(self._windows) * WINDOW
        self._pre_roll.clear()
        self.in_speech = True
        self._speech_windows = 0
        self._speech_start_ns = captured_ns
        self._part = 0

    def _close(self) -> list[Utterance]:
        end = min(len(self._windows), self._last_speech + 1 + _windows_in(self.post_roll_ms))
        long_enough = self._speech_windows * WINDOW >= self.min_speech_ms * SAMPLE_RATE / 1000
        done = [self._utterance(end, last_part=True)] if (long_enough or self._part) else []
        # The silence after the speech is the next utterance's pre-roll.
        self._pre_roll.extend(self._windows[end:])
        self.in_speech = False
        self._windows, self._probs = [], []
        return done

    def _split(self) -> Utterance:
        # Cut after the quietest window of the last fifth, so no word is cut in two.
        search_from = len(self._windows) * 4 // 5
        cut = search_from + int(np.argmin(self._probs[search_from:])) + 1
        part = self._utterance(cut, last_part=False)
        self.start_sample += cut * WINDOW
        self._windows, self._probs = self._windows[cut:], self._probs[cut:]
        self._last_speech = max(-1, self._last_speech - cut)
        self._speech_start_ns = self._speech_end_ns
        self._part += 1
        return part

    def _utterance(self, end: int, last_part: bool) -> Utterance:
        return Utterance(
            audio=np.concatenate(self._windows[:end]),
            start_sample=self.start_sample,
            speech_start_ns=self._speech_start_ns,
            speech_end_ns=self._speech_end_ns,
            part=self._part,
            last_part=last_part,
        )


def _windows_in(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000 / WINDOW)


def utterance_id(stream: str, start_sample: int) -> str:
    """Deterministic from the audio itself, so a re-sent utterance keeps its id."""
    return f"{stream}@{start_sample * 1000 // SAMPLE_RATE:09d}ms"


@dataclass
class Outgoing:
    """An utterance (or the end of a stream) waiting for keys to say it was typed."""

    body: object
    utt: str
    marks: dict
    payload: bytes = b""
    start_sample: int = 0
    barge_in_ns: int = 0  # when the user began speaking again while this was in flight
    cancelled: bool = False


class Vad(Stage):
    name = "vad"
    topics = (AudioChunk.TOPIC, Typed.TOPIC)

    def setup(self) -> None:
        path = silero_path()
        if not os.path.isfile(path):
            raise StageError(f"Silero VAD model {path} is missing: reinstall faster-whisper (pip install faster-whisper)")
        self.model = StreamingSilero(path)
        self._new_segmenter()
        self.stream = ""
        self.pending = np.zeros(0, np.int16)
        self.next_offset = 0
        self.stream_began_at = 0  # the offset this process took the stream up at
        self.may_rewind = True  # see handle(): until this process has cut an utterance
        self.outbox: deque[Outgoing] = deque()
        self.in_flight: Outgoing | None = None
        self.resend = False
        self.state_path = persistence.path_for(self.config, self.name)
        self.memory = persistence.load(self.state_path)  # survives a restart: see _identify
        self.downstream = [name for name in self.settings["listen"] if name != "capture"]

    def _new_segmenter(self) -> None:
        keys = ("threshold", "end_of_speech_ms", "pre_roll_ms", "post_roll_ms", "min_speech_ms", "max_utterance_s")
        self.segmenter = Segmenter(**{key: self.settings[key] for key in keys})

    # --- audio in ---

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Typed):
            return self._acknowledged(frame)
        chunk: AudioChunk = frame.body
        if len(frame.payload) % 2:
            raise FrameRejected("bad_payload", "audio payload is not whole int16 samples")
        if chunk.stream != self.stream:
            self._start_stream(chunk.stream, chunk.offset)
        expected = self.next_offset + len(self.pending)
        if chunk.offset < self.stream_began_at and self.may_rewind:
            # After a restart the first audio to arrive may be live audio from the middle
            # of an utterance, ahead of what capture re-sends from before the crash:
            # start again from the re-sent audio (it runs on through the live part).
            self.log.info("taking the stream up again from re-sent audio", offset=chunk.offset, was=self.stream_began_at)
            self._start_stream(chunk.stream, chunk.offset)
            expected = chunk.offset
        if chunk.offset < expected:
            return  # audio capture re-sent that we already have
        if chunk.offset > expected:
            self.peer.counters["audio_gaps"] += 1
            self.log.warning("audio gap", missing_samples=chunk.offset - expected)
            self.pending = np.zeros(0, np.int16)
            self.next_offset = chunk.offset
        samples = np.frombuffer(frame.payload, "<i2")
        self.pending = np.concatenate([self.pending, samples])
        captured_ns = frame.marks.get("capture", now_ns())
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            prob = self.model(window.astype(np.float32) / 32768.0)
            was_speaking = self.segmenter.in_speech
            for utterance in self.segmenter.push(window, prob, self.next_offset, captured_ns):
                self._queue(utterance)
            if self.segmenter.in_speech and not was_speaking:
                self._barge_in(captured_ns)
            self.next_offset += WINDOW
        self._publish_progress()

    def on_end(self, frame: Frame) -> None:
        if frame.src == "keys":
            return self._acknowledged(frame)
        if frame.src != "capture" or frame.body.stream != self.stream:
            return
        for utterance in self.segmenter.flush():
            self._queue(utterance)
        self.outbox.append(Outgoing(frame.body, frame.utt, frame.marks, start_sample=frame.body.samples))
        self._pump()

    def _start_stream(self, stream: str, offset: int) -> None:
        self.stream = stream
        self.model.reset()
        self._new_segmenter()
        self.pending = np.zeros(0, np.int16)
        self.next_offset = offset
        self.stream_began_at = offset

    # --- utterances out, one at a time, until keys has typed each ---

    def _queue(self, utterance: Utterance) -> None:
        self.may_rewind = False  # rewinding now could cut the same speech twice under two ids
        utt = self._identify(utterance)
        if utt is None:
            self.log.info("utterance already typed before a restart", start=utterance.start_sample)
            return
        marks = {"speech_start": utterance.speech_start_ns, "speech_end": utterance.speech_end_ns, "vad": now_ns()}
        body = Speech(self.stream, utterance.start_sample, utterance.part, utterance.last_part)
        self.outbox.append(Outgoing(body, utt, marks, utterance.audio.astype("<i2").tobytes(), utterance.start_sample))
        self.log.info("utterance", utt=utt, seconds=round(len(utterance.audio) / SAMPLE_RATE, 2), part=utterance.part)
        self._pump()

    def _identify(self, utterance: Utterance) -> str | None:
        """The utterance's id; None if it was typed before this process started. After a
        restart the audio is segmented afresh and onsets may move by a window or two, so
        an utterance is matched to remembered ones by its start, within the pre-roll."""
        tolerance = SAMPLE_RATE // 2
        for utt, start, acknowledged in self.memory.get("recent", []):
            if abs(start - utterance.start_sample) <= tolerance and self.memory.get("stream") == self.stream:
                return None if acknowledged else utt
        return utterance_id(self.stream, utterance.start_sample)

    def _pump(self) -> None:
        if self.in_flight is None and self.outbox:
            self.in_flight = self.outbox.popleft()
            self._send(self.in_flight)
            self._remember(self.in_flight, acknowledged=False)

    def _send(self, out: Outgoing) -> None:
        self.publish(out.body, utt=out.utt, marks=out.marks, payload=out.payload)

    def _acknowledged(self, frame: Frame) -> None:
        out = self.in_flight
        done = isinstance(frame.body, EndOfStream) or frame.body.final
        if out is None or not done or frame.utt != out.utt:
            return
        self._remember(out, acknowledged=True)
        self.in_flight = None
        self._pump()

    def _remember(self, out: Outgoing, acknowledged: bool) -> None:
        if isinstance(out.body, EndOfStream):
            return
        recent = [entry for entry in self.memory.get("recent", []) if entry[0] != out.utt][-RECENT:]
        self.memory = {"stream": self.stream, "recent": [*recent, [out.utt, out.start_sample, acknowledged]]}
        persistence.save(self.state_path, self.memory)

    def _barge_in(self, onset_ns: int) -> None:
        """The user speaks again: an answer still being worked on is no longer wanted --
        once the moment the new speech began has really come (in a fast replay, audio
        runs ahead of the clock)."""
        if self.in_flight is not None and not self.in_flight.barge_in_ns:
            self.in_flight.barge_in_ns = onset_ns

    def tick(self) -> float:
        out = self.in_flight
        if out is not None and out.barge_in_ns and not out.cancelled and now_ns() >= out.barge_in_ns:
            out.cancelled = True
            self.publish(Cancel(reason="new speech"), utt=out.utt)
        if self.resend and out is not None and self._downstream_ready():
            self.resend = False
            self.log.warning("re-sending after a restart downstream", utt=out.utt)
            self._send(out)
        if out is not None and out.barge_in_ns and not out.cancelled:
            return max(0.0, (out.barge_in_ns - now_ns()) / 1e9)
        return 0.2

    def on_peer_restart(self, name: str) -> None:
        super().on_peer_restart(name)
        if name in self.downstream:
            self.resend = True

    def _downstream_ready(self) -> bool:
        return all(self.peer.heard[name] is not None and self.peer.heard[name].ready for name in self.downstream)

    def _publish_progress(self) -> None:
        """Audio before `committed` is no longer needed: capture may forget it."""
        if self.in_flight is not None:
            committed = self.in_flight.start_sample
        elif self.segmenter.in_speech:
            committed = self.segmenter.start_sample
        else:
            committed = self.next_offset
        pre_roll = int(self.settings["pre_roll_ms"]) * SAMPLE_RATE // 1000
        self.progress = {"stream": self.stream, "committed": max(0, committed - pre_roll - WINDOW)}


if __name__ == "__main__":
    main(Vad)
