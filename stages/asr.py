"""asr: `speech` utterances -> `transcript`s, with faster-whisper.

Consumes: `speech` (16 kHz mono int16 payload), handed over reliably by vad, and vad's
`guess`es.
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
Stable partials (vad's `partial_every_ms`): while speech goes on, its audio so far is
recognised again and again, and the words two recognitions in a row agree on
(LocalAgreement-2, leaving out the last word, which the audio may end inside) go to
the router as a `partial` transcript. Every later recognition of the utterance is made
to begin with the words already sent (Whisper's `prefix`), so none is ever taken back.
Guarantees against text invented on noise: Silero gating upstream, no conditioning on
previous text, Whisper's no-speech and log-probability tests, and a list of phantom
phrases Whisper is known to produce on silence.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bus import models
from bus.delivery import partial_key
from bus.frames import Frame, Guess, Speech, Transcript, now_ns
from bus.stage import Stage, StageError, main, mark
from bus.text import plain, words


@dataclass
class Segment:
    text: str
    no_speech_prob: float
    avg_logprob: float


def resolve_model(name: str) -> str:
    """The embedded model, a model from models/manifest.toml by name, or any
    CTranslate2 Whisper model folder by path (bus/models.py: resolve)."""
    try:
        return str(
            models.resolve(
                name, lambda path: (path / "model.bin").is_file(), "Whisper model (a CTranslate2 folder with model.bin)"
            )
        )
    except models.ModelError as error:
        raise StageError(str(error)) from None


def judge(
    segments: list[Segment], no_speech_threshold: float, min_avg_logprob: float, phantoms: set[str]
) -> tuple[str, str]:
    """(text to type, reason it is dropped); pure, so the guards are testable on their own."""
    kept = [s for s in segments if s.no_speech_prob <= no_speech_threshold and s.avg_logprob >= min_avg_logprob]
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


def audio_key(frame: Frame, prefix: str = "") -> tuple:
    """Which utterance, which part, exactly which audio, and the words it must begin with."""
    return (frame.utt, frame.body.part, hashlib.blake2b(frame.payload, digest_size=16).digest(), prefix)


@dataclass
class Hypotheses:
    """The recognitions of one utterance's audio so far, for LocalAgreement-2."""

    utt: str
    part: int
    previous: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # sent as partials: every later result begins with them

    def agree(self, current: list[str]) -> list[str]:
        """The words newly agreed on by the previous recognition and this one (whose last
        word is left out: the audio may end inside it); empty if none."""
        agreed = 0
        for before, now in zip(self.previous, current[:-1]):
            if words(before) != words(now):
                break
            agreed += 1
        self.previous = current
        if agreed <= len(self.committed):
            return []
        new = current[len(self.committed) : agreed]
        self.committed = self.committed + new  # as sent: their spelling is not revised
        return new


def guess_is_stale(guess: Frame, waiting: list[Frame]) -> bool:
    """A guess is not worth recognising if a speech frame waits (it is owed a result
    first) or a newer guess of the same utterance does (the speaker went on)."""
    return any(isinstance(frame.body, Speech) or frame.utt == guess.utt for frame in waiting)


class Asr(Stage):
    name = "asr"

    def setup(self) -> None:
        from faster_whisper import WhisperModel

        path = resolve_model(str(self.settings["model"]))
        try:
            self.model = WhisperModel(
                path, device="cpu", compute_type=self.settings["compute_type"], cpu_threads=self.threads
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise StageError(
                f"Whisper model {path} cannot be loaded ({error}): run `voxkey models fetch` or fix stages.asr.model"
            ) from None
        self.phantoms = {plain(p) for p in self.settings["phantom_phrases"]}
        self.guessed: Recognised | None = None
        self.hypotheses: Hypotheses | None = None  # of the utterance being spoken, if partials are on
        # The first call pays for lazy initialisation; pay it before reporting ready.
        self._transcribe(np.zeros(16_000, np.float32))

    def _transcribe(self, samples: np.ndarray, prefix: str = "") -> list[Segment]:
        """Whisper's segments; with `prefix`, the first is made to begin with those words."""
        segments, _info = self.model.transcribe(
            samples,
            language=self.settings["language"] or None,
            beam_size=int(self.settings["beam_size"]),
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
            no_speech_threshold=float(self.settings["no_speech_threshold"]),
            hotwords=self.settings["hotwords"] or None,
            prefix=prefix or None,
        )
        return [Segment(s.text, s.no_speech_prob, s.avg_logprob) for s in segments]

    def _judged(self, segments: list[Segment]) -> tuple[str, str]:
        return judge(
            segments,
            float(self.settings["no_speech_threshold"]),
            float(self.settings["min_avg_logprob"]),
            self.phantoms,
        )

    def _spoken(self, frame: Frame) -> Hypotheses | None:
        """The partials' hypotheses, if they are of this utterance (and part)."""
        hypotheses = self.hypotheses
        return (
            hypotheses
            if hypotheses is not None and (hypotheses.utt, hypotheses.part) == (frame.utt, frame.body.part)
            else None
        )

    def _committed(self, frame: Frame) -> str:
        """The words already sent as partials for this utterance's audio."""
        hypotheses = self._spoken(frame)
        return " ".join(hypotheses.committed) if hypotheses else ""

    def _recognise(self, frame: Frame) -> Recognised:
        samples = np.frombuffer(frame.payload, "<i2").astype(np.float32) / 32768.0
        prefix = self._committed(frame)
        return Recognised(audio_key(frame, prefix), self._transcribe(samples, prefix), now_ns())

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Guess):
            return self._guess(frame)
        recognised = self._take_guess(frame) or self._recognise(frame)
        segments = recognised.segments
        text, dropped = self._judged(segments)
        best = max(segments, key=lambda s: s.no_speech_prob, default=Segment("", 0.0, 0.0))
        speech: Speech = frame.body
        transcript = Transcript(
            text=text,
            dropped=dropped,
            no_speech_prob=best.no_speech_prob,
            avg_logprob=best.avg_logprob,
            part=speech.part,
            last_part=speech.last_part,
        )
        marks = {**mark(frame.marks, "asr"), "recognised": recognised.finished_ns}
        self.publish(transcript, utt=frame.utt, marks=marks, key=frame.utt)
        self.log.info("transcript", utt=frame.utt, text=text, dropped=dropped, raw=" ".join(s.text for s in segments))
        if self._spoken(frame):
            self.hypotheses = None  # the utterance is done

    def _guess(self, frame: Frame) -> None:
        if guess_is_stale(frame, self.waiting()):
            self.peer.counters["guesses_skipped"] += 1
            return
        if frame.body.ongoing:
            return self._partial(frame)
        self._forget_guess()
        self.guessed = self._recognise(frame)

    def _partial(self, frame: Frame) -> None:
        """The audio so far of speech that goes on: send the words that stopped changing."""
        if self._spoken(frame) is None:
            self.hypotheses = Hypotheses(frame.utt, frame.body.part)
        text, dropped = self._judged(self._recognise(frame).segments)
        new = self.hypotheses.agree(text.split()) if not dropped else []
        self.peer.counters["partials_recognised"] += 1
        if not new:
            return
        committed = self.hypotheses.committed
        transcript = Transcript(text=" ".join(committed), part=frame.body.part, partial=True)
        self.publish(
            transcript, utt=frame.utt, marks=mark(frame.marks, "asr"), key=partial_key(frame.utt, len(committed))
        )
        self.log.info("partial", utt=frame.utt, text=transcript.text, new=" ".join(new))

    def _take_guess(self, frame: Frame) -> Recognised | None:
        """The guess's result if it was made from this very audio. Any other guess
        was of this utterance's audio before the speaker went on: wasted."""
        if self.guessed is not None and self.guessed.audio_key == audio_key(frame, self._committed(frame)):
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
