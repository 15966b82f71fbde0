"""asr: `speech` utterances -> `transcript`s, with faster-whisper.

Consumes: `speech` (16 kHz mono int16 payload), handed over reliably by vad.
Produces: one `transcript` per utterance, handed over reliably to the router, marked
`asr` when final. A transcript that must not be typed still goes out, with `dropped`
saying why, so every utterance is accounted for downstream.
Stateless: after a restart, what vad sends again is recognised again (the same audio
gives the same words, and the utterance id tells the router it has seen it).
Ahead of time: a `guess` (the audio an utterance will have if a pause is its end) is
recognised while vad waits out the rest of the pause, unless newer work waits; a
`speech` frame whose audio is byte for byte the guess's takes its result at once, so
the words are those the utterance itself would give. One guess is kept: the memory
is bounded, and a guess not used is counted as wasted.
Guarantees against text invented on noise: Silero gating upstream, no conditioning on
previous text, Whisper's no-speech and log-probability tests, and a list of phantom
phrases Whisper is known to produce on silence.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from bus import models
from bus.frames import Frame, Guess, Speech, Transcript, now_ns
from bus.stage import Stage, StageError, main, mark
from bus.text import plain


@dataclass
class Segment:
    text: str
    no_speech_prob: float
    avg_logprob: float


def resolve_model(name: str) -> str:
    """The embedded model, a model from models/manifest.toml by name, or any
    CTranslate2 Whisper model folder by path (bus/models.py: resolve)."""
    try:
        return str(models.resolve(name, lambda path: (path / "model.bin").is_file(),
                                  "Whisper model (a CTranslate2 folder with model.bin)"))
    except models.ModelError as error:
        raise StageError(str(error)) from None


def judge(segments: list[Segment], no_speech_threshold: float, min_avg_logprob: float, phantoms: set[str]) -> tuple[str, str]:
    """(text to type, reason it is dropped); pure, so the guards are testable on their own."""
    kept = [
        s
        for s in segments
        if s.no_speech_prob <= no_speech_threshold and s.avg_logprob >= min_avg_logprob
    ]
    text = " ".join(s.text.strip() for s in kept).strip()
    if not segments:
        return "", "no_segments"
    if not kept:
        return "", "not_speech"
    if not plain(text):
        return "", "no_words"
    if plain(text) in phantoms:
        return "", "phantom_phrase"
    return text, ""


@dataclass
class Recognised:
    """What Whisper made of one utterance's audio, and when it finished."""

    audio_key: tuple
    segments: list[Segment]
    finished_ns: int


def audio_key(frame: Frame) -> tuple:
    """Which utterance, which part, and exactly which audio."""
    return (frame.utt, frame.body.part, hashlib.blake2b(frame.payload, digest_size=16).digest())


def guess_is_stale(guess: Frame, waiting: list[Frame]) -> bool:
    """A guess is not worth recognising if a speech frame waits (it is owed a result
    first) or a newer guess of the same utterance does (the speaker went on)."""
    return any(isinstance(frame.body, Speech) or frame.utt == guess.utt for frame in waiting)


class Asr(Stage):
    name = "asr"
    topics = (Speech.TOPIC, Guess.TOPIC)

    def setup(self) -> None:
        from faster_whisper import WhisperModel

        path = resolve_model(str(self.settings["model"]))
        try:
            self.model = WhisperModel(path, device="cpu", compute_type=self.settings["compute_type"], cpu_threads=self.threads)
        except (RuntimeError, ValueError, OSError) as error:
            raise StageError(f"Whisper model {path} cannot be loaded ({error}): run `voxkey models fetch` or fix stages.asr.model") from None
        self.phantoms = {plain(p) for p in self.settings["phantom_phrases"]}
        self.guessed: Recognised | None = None
        # The first call pays for lazy initialisation; pay it before reporting ready.
        self._transcribe(np.zeros(16_000, np.float32))

    def _transcribe(self, samples: np.ndarray) -> list[Segment]:
        segments, _info = self.model.transcribe(
            samples,
            language=self.settings["language"] or None,
            beam_size=int(self.settings["beam_size"]),
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
            no_speech_threshold=float(self.settings["no_speech_threshold"]),
            hotwords=self.settings["hotwords"] or None,
        )
        return [Segment(s.text, s.no_speech_prob, s.avg_logprob) for s in segments]

    def _recognise(self, frame: Frame) -> Recognised:
        samples = np.frombuffer(frame.payload, "<i2").astype(np.float32) / 32768.0
        segments = self._transcribe(samples)
        return Recognised(audio_key(frame), segments, now_ns())

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Guess):
            return self._guess(frame)
        recognised = self._take_guess(frame) or self._recognise(frame)
        segments = recognised.segments
        text, dropped = judge(
            segments, float(self.settings["no_speech_threshold"]), float(self.settings["min_avg_logprob"]), self.phantoms
        )
        best = max(segments, key=lambda s: s.no_speech_prob, default=Segment("", 0.0, 0.0))
        speech: Speech = frame.body
        transcript = Transcript(text=text, dropped=dropped, no_speech_prob=best.no_speech_prob, avg_logprob=best.avg_logprob,
                                part=speech.part, last_part=speech.last_part)
        marks = {**mark(frame.marks, "asr"), "recognised": recognised.finished_ns}
        self.publish(transcript, utt=frame.utt, marks=marks, to="router", key=frame.utt)
        self.log.info("transcript", utt=frame.utt, text=text, dropped=dropped, raw=" ".join(s.text for s in segments))

    def _guess(self, frame: Frame) -> None:
        if guess_is_stale(frame, self.waiting()):
            self.peer.counters["guesses_skipped"] += 1
            return
        self._forget_guess()
        self.guessed = self._recognise(frame)

    def _take_guess(self, frame: Frame) -> Recognised | None:
        """The guess's result if it was made from this very audio. Any other guess
        was of this utterance's audio before the speaker went on: wasted."""
        if self.guessed is not None and self.guessed.audio_key == audio_key(frame):
            guessed, self.guessed = self.guessed, None
            self.peer.counters["guesses_used"] += 1
            return guessed
        self._forget_guess()
        return None

    def _forget_guess(self) -> None:
        if self.guessed is not None:
            self.peer.counters["guesses_wasted"] += 1
            self.guessed = None


if __name__ == "__main__":
    main(Asr)
