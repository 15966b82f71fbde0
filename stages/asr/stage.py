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
Pauses between words: a final transcript (and a guess, which may become one) is
recognised with Whisper's word timings, and says how long the silence after each of
its first words was (`pauses_ms`): "Chat. What is..." has one after "Chat", "Chat logs
show..." none, which is how the router tells a mode's name from a word that begins a
sentence. Partials skip the timings, which cost an alignment pass each time.
Guards against text invented on noise: Silero gating upstream, no conditioning on
previous text, and a transcript is dropped only on evidence that nobody spoke, never
for what its words are (Whisper invents "Thank you." on breath, and people say it):
vad heard too little voice (`not_voiced`), Whisper rates it not speech
(`not_speech`), is too unsure of it (`low_confidence`), or its decoding went round in
a loop (`repetitive`). Each guard's value, and what it was measured on, is in
bus/defaults.toml; `python -m bench.hallucination` measures them again (guards.py).
Encoding (`encode`, encoding.py): the 30 s window Whisper was trained on, the
utterance padded to it ("window"), or the utterance's own frames and a short tail
("utterance"), checked and recognised again the padded way when it looks wrong.
"""

import hashlib
import itertools
from dataclasses import dataclass, field

import numpy as np

from bus import models
from bus.delivery import partial_key
from bus.frames import SAMPLE_RATE, Frame, Guess, Speech, Transcript, now_ns
from bus.stage import Stage, StageError, mark
from bus.text import words
from stages.asr import encoding
from stages.asr.guards import (  # noqa: F401 (the benches use them from here)
    Guards,
    Segment,
    judge,
    kept_words,
    not_spoken,
    pauses_after,
)
from stages.asr.language import AUTO, LanguageRule, choose, probabilities_of

WHISPER_WINDOW = 30 * SAMPLE_RATE  # samples Whisper hears at once


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


@dataclass
class Recognised:
    """What Whisper made of one utterance's audio, and when it finished."""

    audio_key: tuple
    segments: list[Segment]
    finished_ns: int
    language: str = ""


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
    language: str = ""  # chosen at the first partial: the words already sent are in it

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


def decoding_options(settings: dict, prefix: str = "", timed: bool = False, language: str = "") -> dict:
    """faster-whisper's `transcribe` options for one utterance, in `language` (else the
    configured one; "auto" without a language chosen lets faster-whisper detect it)."""
    configured = "" if settings["language"] == AUTO else settings["language"]
    return {
        "language": language or configured or None,
        "beam_size": int(settings["beam_size"]),
        # Greedy or beam only: faster-whisper's retries at rising temperatures sample
        # with CTranslate2's generator in its worker thread, which no seed set here
        # reaches; the same audio then came back as three different texts in three
        # tries (tests/audio/languages, base), and a replay typed other words. What
        # looks wrong at temperature 0 is for the guards to judge, as in the short
        # encoding. Measured (voxkey bench --languages, held split, base, language
        # given): word error rate de 0.66 -> 0.72, fr 0.77 -> 0.80, es 0.50 -> 0.53 on
        # espeak-ng's voices, English unchanged (nothing fell back); the retries had
        # also cost up to 7 s a clip.
        "temperature": 0.0,
        "condition_on_previous_text": False,
        "vad_filter": False,
        "without_timestamps": True,
        "no_speech_threshold": float(settings["no_speech_threshold"]),
        "hotwords": settings["hotwords"] or None,
        "prefix": prefix or None,
        "word_timestamps": timed,
    }


def transcribe(
    model, settings: dict, samples: np.ndarray, prefix: str = "", timed: bool = False, language: str = "", encoded=None
) -> tuple[list, str]:
    """(segments, why the short encoding was not trusted: "" if it was, or not tried).
    `encode = "utterance"`: the utterance's own frames first (encoding.py), else, or if
    that looks wrong, the 30 s window as faster-whisper pads it. `encoded`: the short
    encoding's encoder output, if already made (to choose the language)."""
    options = decoding_options(settings, prefix, timed, language)
    how = encoding.Encoding.of(settings)
    fell_back = ""
    if how.short(len(samples)) and (options["language"] or not model.model.is_multilingual):
        found, fell_back = encoding.short_segments(model, samples, options, how, encoded)
        if not fell_back:
            return [kept(s) for s in found], ""
    segments, _info = model.transcribe(samples, **options)
    if timed and len(samples) <= WHISPER_WINDOW:
        # With word timings faster-whisper goes on from the last word's end and decodes
        # what is left (the post-roll's silence) as a window of its own, where it
        # invents words ("Thank you for watching." after dictate_report.wav, measured).
        # Without timestamp tokens (the <|notimestamps|> prompt) a window's words are
        # one segment, so the first segment is the whole utterance; taking only it also
        # spares that extra window's decoding.
        segments = itertools.islice(segments, 1)
    return [kept(s) for s in segments], fell_back


def kept(segment) -> Segment:
    """What voxkey keeps of a faster-whisper segment."""
    return Segment(
        segment.text, segment.no_speech_prob, segment.avg_logprob, segment.compression_ratio, segment.words or []
    )


@dataclass
class AsrState:
    """What asr keeps in its state file: the language "auto" sticks to."""

    language: str = ""


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
        self.guards = Guards.of(self.settings)
        self._check_language()
        try:
            encoding.Encoding.of(self.settings)
        except ValueError as error:
            raise StageError(str(error)) from None
        self.guessed: Recognised | None = None
        self.hypotheses: Hypotheses | None = None  # of the utterance being spoken, if partials are on
        # The first call pays for lazy initialisation; pay it before reporting ready.
        self._transcribe(np.zeros(16_000, np.float32), timed=True, language=self.language or "en")

    def _check_language(self) -> None:
        """The language setting against the model: an English-only model hears English."""
        language = str(self.settings["language"] or AUTO)
        self.rule = LanguageRule.of(self.settings)
        multilingual = self.model.model.is_multilingual
        if not multilingual and language not in ("en", AUTO):
            raise StageError(
                f"Whisper model {self.settings['model']} is English-only and cannot hear language {language!r}: "
                'set stages.asr.model = "base" (./install --multilingual) or stages.asr.language = "en"'
            )
        self.auto = multilingual and language == AUTO
        # The language in use, kept across restarts: "auto" sticks to it (language.py).
        saved = self.load_state(AsrState)
        self.language = (saved.language or self.rule.first()) if self.auto else ("en" if not multilingual else language)

    def _transcribe(
        self, samples: np.ndarray, prefix: str = "", timed: bool = False, language: str = "", encoded=None
    ) -> list[Segment]:
        """Whisper's segments; with `prefix`, the first is made to begin with those words;
        `timed`: with each word's start and end (an extra alignment pass). Needs only
        `model` and `settings` (the benches borrow it); why the short encoding was not
        used, if it was tried, is left in `fell_back`."""
        segments, self.fell_back = transcribe(self.model, self.settings, samples, prefix, timed, language, encoded)
        return segments

    def _language_for(self, frame: Frame, samples: np.ndarray) -> tuple[str, object]:
        """(the language to recognise the utterance in, the encoder output it was judged
        on, or None). Partials and the final transcript of one utterance share theirs."""
        hypotheses = self._spoken(frame)
        if not self.auto or (hypotheses and hypotheses.language):
            return (hypotheses.language if hypotheses and self.auto else self.language), None
        how = encoding.Encoding.of(self.settings)
        frames = how.frames(len(samples)) if how.short(len(samples)) else encoding.WINDOW_FRAMES
        encoded = self.model.encode(encoding.features_of(self.model, samples, frames, how.pad))
        language = choose(probabilities_of(self.model, encoded), self.language, len(samples), self.rule)
        return language, (encoded if how.short(len(samples)) else None)

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

    def _recognise(self, frame: Frame, timed: bool = True) -> Recognised:
        samples = np.frombuffer(frame.payload, "<i2").astype(np.float32) / 32768.0
        prefix = self._committed(frame)
        language, encoded = self._language_for(frame, samples)
        segments = self._transcribe(samples, prefix, timed, language, encoded)
        if self.fell_back:  # the short encoding looked wrong: recognised again in the 30 s window
            self.peer.counters[f"encode_fallback_{self.fell_back}"] += 1
        return Recognised(audio_key(frame, prefix), segments, now_ns(), language)

    def handle(self, frame: Frame) -> None:
        if isinstance(frame.body, Guess):
            return self._guess(frame)
        recognised = self._take_guess(frame) or self._recognise(frame)
        segments = recognised.segments
        speech: Speech = frame.body
        text, dropped = judge(segments, self.guards, speech.voiced_ms)
        best = max(segments, key=lambda s: s.no_speech_prob, default=Segment("", 0.0, 0.0, 0.0))
        transcript = Transcript(
            text=text,
            dropped=dropped,
            no_speech_prob=best.no_speech_prob,
            avg_logprob=best.avg_logprob,
            part=speech.part,
            last_part=speech.last_part,
            pauses_ms=[] if dropped else pauses_after(kept_words(segments, self.guards), speech.voicing),
            language=recognised.language,
        )
        marks = {**mark(frame.marks, "asr"), "recognised": recognised.finished_ns}
        self.publish(transcript, utt=frame.utt, marks=marks, key=frame.utt)
        self.log.info(
            "transcript",
            utt=frame.utt,
            text=text,
            dropped=dropped,
            raw=" ".join(s.text for s in segments),
            voiced_ms=speech.voiced_ms,
            pauses_ms=transcript.pauses_ms,
        )
        if self._spoken(frame):
            self.hypotheses = None  # the utterance is done
        if self.auto and not dropped and recognised.language != self.language:
            self.log.info("language now", language=recognised.language, was=self.language, utt=frame.utt)
            self.language = recognised.language
            self.save_state(AsrState(self.language))

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
        recognised = self._recognise(frame, timed=False)
        self.hypotheses.language = recognised.language
        text, dropped = judge(recognised.segments, self.guards, None)
        new = self.hypotheses.agree(text.split()) if not dropped else []
        self.peer.counters["partials_recognised"] += 1
        if not new:
            return
        committed = self.hypotheses.committed
        transcript = Transcript(
            text=" ".join(committed), part=frame.body.part, partial=True, language=self.hypotheses.language
        )
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
