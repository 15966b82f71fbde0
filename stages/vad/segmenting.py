"""Cutting a stream into utterances: Silero VAD v6 run window by window with its state
carried (`StreamingSilero`), and the pure rule that turns (window, speech probability)
pairs into utterances (`Segmenter`): onset, pre-roll, end of speech, guesses, parts at
Whisper's window, refusal while downstream is stalled. What the vad stage runs
(stages/vad/stage.py), and what the benches and tests cut recordings with, in process.
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import onnxruntime

from bus import models
from bus.frames import (
    SAMPLE_RATE,
    Speech,
)

WINDOW = 512  # Silero v6 at 16 kHz
CONTEXT = 64
# Once speech has begun it continues while the probability stays above this much
# below the onset threshold (hysteresis, as in Silero's own iterator).
HYSTERESIS = 0.15


def silero_path() -> str:
    return str(models.built_in_path("silero-vad-v6"))


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
    onset_sample: int = 0  # where speech was first heard (after the pre-roll)
    end_sample: int = 0  # where the last speech window ends (before the post-roll)
    guess: bool = False  # not an utterance yet: what it will be if the pause goes on
    ongoing: bool = False  # a guess of speech that goes on: its audio so far
    voiced_ms: int = 0  # how much of the audio Silero judged speech
    voicing: str = ""  # per window: "#" speech (as the segmenter counts it), "." not

    def speech(self, stream: str) -> Speech:
        """The `speech` frame's body for this utterance of `stream`."""
        return Speech(
            stream,
            self.start_sample,
            self.part,
            self.last_part,
            self.onset_sample,
            self.end_sample,
            self.voiced_ms,
            self.voicing,
        )


@dataclass
class Segmenter:
    """Turns (window, speech probability) pairs into utterances. Pure: no I/O, no model."""

    threshold: float = 0.5
    end_of_speech_ms: int = 500
    pre_roll_ms: int = 300
    post_roll_ms: int = 128
    min_speech_ms: int = 250
    max_utterance_s: float = 28.0
    # At the first pause as long as the post-roll, the utterance's audio is what it
    # will be if the pause is its end: hand it out then as a guess (asr recognises it
    # while the rest of the end-of-speech silence is waited for).
    guess: bool = True
    # While speech goes on past `partial_after_s`, its audio so far every this many ms
    # (0: never), so that asr can type the words that have stopped changing.
    partial_every_ms: int = 0
    partial_after_s: float = 2.0
    # No new utterance begins while this is set (vad holds as much as it may); speech
    # already begun goes on to its end, parts and all, so no sentence is cut in two.
    refusing: bool = False
    refused_windows: int = field(default=0, init=False)  # speech windows heard and not taken
    _refused_quiet: int = field(default=0, init=False)  # silent windows still due before an onset may be taken
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
    _onset_window: int = field(default=0, init=False)
    _last_partial: int = field(default=0, init=False)  # windows held at the last partial guess

    def __post_init__(self):
        self._pre_roll = deque(maxlen=_windows_in(self.pre_roll_ms))

    def push(self, window: np.ndarray, prob: float, offset: int, captured_ns: int) -> list[Utterance]:
        """Feed one window that starts at sample `offset`; returns utterances completed by it."""
        if not self.in_speech:
            if self.refusing or self._refused_quiet:
                return self._refuse(window, prob)
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
        if self.guess and silent == max(1, _windows_in(self.post_roll_ms)) and self._long_enough():
            return [self._utterance(self._end(), last_part=True, guess=True)]
        if silent == 0 and self._partial_due():
            self._last_partial = len(self._windows)
            return [self._utterance(len(self._windows), last_part=True, guess=True, ongoing=True)]
        return []

    def _refuse(self, window: np.ndarray, prob: float) -> list[Utterance]:
        """Speech heard while refusing is counted, not kept. A burst refused goes on being
        refused, after refusing ends, until a pause as long as the end of speech: taking
        it up mid-sentence would type its second half as if it had been said alone."""
        self._pre_roll.append(window)  # the pre-roll is right for the first onset taken again
        self.refused_windows += prob >= self.threshold
        if prob >= self.threshold - HYSTERESIS and (prob >= self.threshold or self._refused_quiet):
            self._refused_quiet = max(1, _windows_in(self.end_of_speech_ms))
        elif self._refused_quiet:
            self._refused_quiet -= 1
        return []

    def _partial_due(self) -> bool:
        if not self.partial_every_ms or len(self._windows) * WINDOW < self.partial_after_s * SAMPLE_RATE:
            return False
        return len(self._windows) - self._last_partial >= _windows_in(self.partial_every_ms)

    def flush(self) -> list[Utterance]:
        """End of stream: whatever speech is open is complete."""
        done = self._close() if self.in_speech else []
        self._pre_roll.clear()
        return done

    def _open(self, offset: int, captured_ns: int) -> None:
        self._windows = list(self._pre_roll)
        self._probs = [0.0] * len(self._windows)
        self.start_sample = offset - len(self._windows) * WINDOW
        self._onset_window = len(self._windows)
        self._pre_roll.clear()
        self.in_speech = True
        self._speech_windows = 0
        self._last_partial = 0
        self._speech_start_ns = captured_ns
        self._part = 0

    def _end(self) -> int:
        """Where the utterance's audio ends, in windows: the post-roll after its last speech."""
        return min(len(self._windows), self._last_speech + 1 + _windows_in(self.post_roll_ms))

    def _long_enough(self) -> bool:
        return self._speech_windows * WINDOW >= self.min_speech_ms * SAMPLE_RATE / 1000 or self._part > 0

    def _close(self) -> list[Utterance]:
        end = self._end()
        done = [self._utterance(end, last_part=True)] if self._long_enough() else []
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
        self._onset_window = 0
        self._last_partial = 0
        self._part += 1
        return part

    def _utterance(self, end: int, last_part: bool, guess: bool = False, ongoing: bool = False) -> Utterance:
        return Utterance(
            audio=np.concatenate(self._windows[:end]),
            start_sample=self.start_sample,
            speech_start_ns=self._speech_start_ns,
            speech_end_ns=self._speech_end_ns,
            part=self._part,
            last_part=last_part,
            onset_sample=self.start_sample + self._onset_window * WINDOW,
            end_sample=self.start_sample + min(end, self._last_speech + 1) * WINDOW,
            guess=guess,
            ongoing=ongoing,
            voiced_ms=sum(prob >= self.threshold for prob in self._probs[:end]) * WINDOW * 1000 // SAMPLE_RATE,
            voicing="".join("#" if prob >= self.threshold - HYSTERESIS else "." for prob in self._probs[:end]),
        )


def _windows_in(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000 / WINDOW)


def utterance_id(stream: str, start_sample: int) -> str:
    """Deterministic from the audio itself, so a re-sent utterance keeps its id."""
    return f"{stream}@{start_sample * 1000 // SAMPLE_RATE:09d}ms"
