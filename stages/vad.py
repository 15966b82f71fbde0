"""vad: `audio` frames -> `speech` utterances, with Silero VAD v6 streaming.

Consumes: `audio` (any frame size; processed in 32 ms windows), `end`.
Produces: one `speech` frame per utterance -- its audio with a pre-roll before onset
and a post-roll after the last speech -- marked with the capture times of its first
and last speech (`speech_start`, `speech_end`) and of the VAD's decision (`vad`).
Then `end`, after flushing any utterance still open.
Guarantees: Silero's recurrent state and context carry from window to window (true
streaming); an utterance longer than `max_utterance_s` is cut at its quietest point
and sent in parts; bursts shorter than `min_speech_ms` are not sent.
"""

import os
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import onnxruntime

from bus.frames import SAMPLE_RATE, AudioChunk, Frame, FrameRejected, Speech, now_ns
from bus.stage import Stage, StageError, main

WINDOW = 512  # Silero v6 at 16 kHz
CONTEXT = 64
# Once speech has begun it continues while the probability stays above this much
# below the onset threshold (hysteresis, as in Silero's own iterator).
HYSTERESIS = 0.15


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
    _in_speech: bool = field(default=False, init=False)
    _start_sample: int = field(default=0, init=False)
    _speech_windows: int = field(default=0, init=False)
    _last_speech: int = field(default=-1, init=False)
    _speech_start_ns: int = field(default=0, init=False)
    _speech_end_ns: int = field(default=0, init=False)
    _part: int = field(default=0, init=False)

    def __post_init__(self):
        self._pre_roll = deque(maxlen=_windows_in(self.pre_roll_ms))

    def push(self, window: np.ndarray, prob: float, offset: int, captured_ns: int) -> list[Utterance]:
        """Feed one window that starts at sample `offset`; returns utterances completed by it."""
        if not self._in_speech:
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
        done = self._close() if self._in_speech else []
        self._pre_roll.clear()
        return done

    def _open(self, offset: int, captured_ns: int) -> None:
        self._windows = list(self._pre_roll)
        self._probs = [0.0] * len(self._windows)
        self._start_sample = offset - len(self._windows) * WINDOW
        self._pre_roll.clear()
        self._in_speech = True
        self._speech_windows = 0
        self._speech_start_ns = captured_ns
        self._part = 0

    def _close(self) -> list[Utterance]:
        end = min(len(self._windows), self._last_speech + 1 + _windows_in(self.post_roll_ms))
        long_enough = self._speech_windows * WINDOW >= self.min_speech_ms * SAMPLE_RATE / 1000
        done = [self._utterance(end, last_part=True)] if (long_enough or self._part) else []
        # The silence after the speech is the next utterance's pre-roll.
        self._pre_roll.extend(self._windows[end:])
        self._in_speech = False
        self._windows, self._probs = [], []
        return done

    def _split(self) -> Utterance:
        # Cut after the quietest window of the last fifth, so no word is cut in two.
        search_from = len(self._windows) * 4 // 5
        cut = search_from + int(np.argmin(self._probs[search_from:])) + 1
        part = self._utterance(cut, last_part=False)
        self._start_sample += cut * WINDOW
        self._windows, self._probs = self._windows[cut:], self._probs[cut:]
        self._last_speech = max(-1, self._last_speech - cut)
        self._speech_start_ns = self._speech_end_ns
        self._part += 1
        return part

    def _utterance(self, end: int, last_part: bool) -> Utterance:
        return Utterance(
            audio=np.concatenate(self._windows[:end]),
            start_sample=self._start_sample,
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


class Vad(Stage):
    name = "vad"
    topics = (AudioChunk.TOPIC,)

    def setup(self) -> None:
        path = silero_path()
        if not os.path.isfile(path):
            raise StageError(f"Silero VAD model {path} is missing: reinstall faster-whisper (pip install faster-whisper)")
        self.model = StreamingSilero(path)
        self._new_segmenter()
        self.stream = ""
        self.pending = np.zeros(0, np.int16)
        self.next_offset = 0

    def _new_segmenter(self) -> None:
        keys = ("threshold", "end_of_speech_ms", "pre_roll_ms", "post_roll_ms", "min_speech_ms", "max_utterance_s")
        self.segmenter = Segmenter(**{key: self.settings[key] for key in keys})

    def handle(self, frame: Frame) -> None:
        chunk: AudioChunk = frame.body
        if len(frame.payload) % 2:
            raise FrameRejected("bad_payload", "audio payload is not whole int16 samples")
        if chunk.stream != self.stream:
            self._start_stream(chunk.stream, chunk.offset)
        samples = np.frombuffer(frame.payload, "<i2")
        self.pending = np.concatenate([self.pending, samples])
        captured_ns = frame.marks.get("capture", now_ns())
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            prob = self.model(window.astype(np.float32) / 32768.0)
            for utterance in self.segmenter.push(window, prob, self.next_offset, captured_ns):
                self._send(utterance)
            self.next_offset += WINDOW

    def on_end(self, frame: Frame) -> None:
        for utterance in self.segmenter.flush():
            self._send(utterance)
        self.publish(frame.body, marks=frame.marks)
        self.stream = ""

    def _start_stream(self, stream: str, offset: int) -> None:
        self.stream = stream
        self.model.reset()
        self._new_segmenter()
        self.pending = np.zeros(0, np.int16)
        self.next_offset = offset

    def _send(self, utterance: Utterance) -> None:
        utt = utterance_id(self.stream, utterance.start_sample)
        marks = {"speech_start": utterance.speech_start_ns, "speech_end": utterance.speech_end_ns, "vad": now_ns()}
        self.publish(
            Speech(self.stream, utterance.start_sample, utterance.part, utterance.last_part),
            utt=utt,
            marks=marks,
            payload=utterance.audio.astype("<i2").tobytes(),
        )
        self.log.info("utterance", utt=utt, seconds=round(len(utterance.audio) / SAMPLE_RATE, 2), part=utterance.part)


if __name__ == "__main__":
    main(Vad)
