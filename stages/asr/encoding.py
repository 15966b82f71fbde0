"""Recognition whose cost follows the audio: Whisper's encoder given the utterance's own
mel frames and a short tail, not 30 s of them ([stages.asr] `encode`).

faster-whisper pads every call to 3000 frames (`pad_or_trim` in `generate_segments`),
so tiny.en's encoder costs the same for "Yes." as for 28 s of speech. CTranslate2
encodes fewer frames; here the frames are encoded and the result handed to
faster-whisper's own `generate_segments` as its `encoder_output`, which it then uses
for the first window instead of encoding one: its prompt (prefix, hotwords), greedy
decoding, no-speech skip and word alignment (given `num_frames`, the audio's own
frames, as for the padded window) stay faster-whisper's.

Whisper was trained on 30 s windows: on too few frames it may repeat itself until the
token limit, or lose a word. So the short recognition is only a first try: decoded once
(no temperature retries), with a token budget from the audio's length, and if it looks
wrong (`suspicious`: no segment, the budget used up, Whisper rating it not speech, a
run of words said twice in a row or text that gzips like a loop, more words than the
audio could hold, a decoding Whisper itself is unsure of, or a first word stretched
over the audio of one before it that was not written) the utterance is
recognised again the padded way, which keeps its retries. So the short encoding only
ever makes a transcript typed; a drop is always the window's verdict.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from bus.frames import SAMPLE_RATE
from bus.text import words
from stages.asr.guards import first_word_swallowed, voice_onset

FRAME = 160  # samples per mel frame (the feature extractor's hop)
WINDOW_FRAMES = 3000  # Whisper's 30 s window
MODES = ("window", "utterance")
REPEATED_RUN = 3  # words: a run this long said twice in a row is taken for a loop
UNSURE = -1.0  # faster-whisper's log_prob_threshold: below it, it retries a decoding hotter


@dataclass(frozen=True)
class Encoding:
    """How much audio the encoder sees ([stages.asr] encode* in bus/defaults.toml)."""

    mode: str = "window"
    tail_ms: int = 1000
    min_frames: int = 1000
    max_s: float = 30.0
    tokens_per_s: float = 8.0
    base_tokens: int = 12
    pad: str = "mel"  # the tail: "mel" (zeros in the mel array) or "silence" (zero samples, then mel)
    max_compression_ratio: float = 2.4
    max_words_per_s: float = 8.0
    no_speech_threshold: float = 0.6

    @classmethod
    def of(cls, settings: dict) -> "Encoding":
        mode = str(settings.get("encode", "window"))
        if mode not in MODES:
            raise ValueError(f"stages.asr.encode must be one of {', '.join(MODES)}, not {mode!r}")
        return cls(
            mode,
            int(settings.get("encode_tail_ms", cls.tail_ms)),
            int(settings.get("encode_min_frames", cls.min_frames)),
            float(settings.get("encode_max_s", cls.max_s)),
            float(settings.get("encode_tokens_per_s", cls.tokens_per_s)),
            int(settings.get("encode_base_tokens", cls.base_tokens)),
            str(settings.get("encode_pad", cls.pad)),
            float(settings.get("max_compression_ratio", cls.max_compression_ratio)),
            float(settings.get("max_words_per_voiced_s", cls.max_words_per_s)),
            float(settings.get("no_speech_threshold", cls.no_speech_threshold)),
        )

    def short(self, samples: int) -> bool:
        """Whether an utterance of this many samples is encoded at its own length."""
        return self.mode == "utterance" and samples <= self.max_s * SAMPLE_RATE and self.frames(samples) < WINDOW_FRAMES

    def frames(self, samples: int) -> int:
        """Frames the encoder sees: the audio's own, the tail, at least `min_frames`; even
        (the encoder halves them), and never more than the window."""
        frames = max(own_frames(samples) + self.tail_ms * SAMPLE_RATE // 1000 // FRAME, self.min_frames)
        return min(frames + frames % 2, WINDOW_FRAMES)

    def budget(self, samples: int) -> int:
        """Most new tokens the short decoding may write: speech is 2-5 words (3-7 tokens)
        a second; a loop goes on to Whisper's limit (448) if nothing stops it."""
        return self.base_tokens + math.ceil(self.tokens_per_s * samples / SAMPLE_RATE)


def own_frames(samples: int) -> int:
    """The mel frames of the audio itself, as faster-whisper counts them (`content_frames`)."""
    return samples // FRAME


def suspicious(
    segments: list, generated: int, budget: int, samples: int, encoding: Encoding, onset_s: float | None = None
) -> str:
    """Why a short recognition is not to be trusted ("" if it is): `segments` as
    faster-whisper gave them, `generated` the tokens decoded, `onset_s` where the voice
    starts in the audio (None: not known, and the first word not checked)."""
    if not segments:
        return "empty"  # Whisper skipped it as not speech (which needs it unsure too), or wrote nothing
    if generated >= budget:
        return "budget"
    if any(s.no_speech_prob > encoding.no_speech_threshold for s in segments):
        return "not_speech"  # the guards would drop it: only the window's evidence may
    text = " ".join(s.text for s in segments)
    if any(s.compression_ratio > encoding.max_compression_ratio for s in segments) or repeated_run(words(text)):
        return "repeats"
    if len(words(text)) > encoding.max_words_per_s * max(samples / SAMPLE_RATE, 1.0):
        return "dense"
    if any(s.avg_logprob < UNSURE for s in segments):
        return "unsure"
    timed = [w for s in segments for w in (s.words or [])]
    if onset_s is not None and first_word_swallowed(timed, onset_s):
        return "first_word"  # Whisper began at the second word said (guards.py)
    return ""


def repeated_run(said: list[str], least: int = REPEATED_RUN) -> bool:
    """Whether some run of at least `least` words comes twice in a row ("switch to
    clarify mode switch to clarify mode"), a shorter one three times ("new line new
    line new line"), or the whole text is said twice ("thanks thanks"): how a short
    encoding's loop that stops before the token budget looks. People seldom do either,
    and if they do the padded recognition, which costs only time, has the last word."""
    half = len(said) // 2
    if len(said) % 2 == 0 and half and said[:half] == said[half:]:
        return True  # all of it twice ("thanks thanks")
    for size in range(1, half + 1):
        times = 2 if size >= least else 3
        span = size * times
        for i in range(len(said) - span + 1):
            if all(said[i : i + size] == said[i + k * size : i + (k + 1) * size] for k in range(1, times)):
                return True
    return False


def features_of(model, samples: np.ndarray, frames: int, pad: str) -> np.ndarray:
    """The log-mel frames the encoder sees: the audio's and a tail up to `frames`,
    either silence appended to the audio before the mel is computed ("silence") or
    zeros appended to the mel ("mel", as faster-whisper's `pad_or_trim` pads)."""
    if pad == "mel":
        features = model.feature_extractor(samples)[:, :frames]
        return np.pad(features, ((0, 0), (0, frames - features.shape[1])))
    silence = np.zeros(max(0, frames * FRAME - len(samples)), np.float32)
    return model.feature_extractor(np.concatenate([samples, silence]))[:, :frames]


def short_segments(model, samples: np.ndarray, options: dict, encoding: Encoding, encoded=None) -> tuple[list, str]:
    """(faster-whisper segments, "") of the utterance's own frames and tail, or (those
    segments, why they look wrong). `options` are `WhisperModel.transcribe`'s keyword
    arguments (language must be given, or the model be English-only: faster-whisper's
    own detection would encode a 30 s window; stages/asr/language.py chooses it from
    this encoding instead, and hands its `encoded` output on)."""
    from faster_whisper.tokenizer import Tokenizer

    budget = encoding.budget(len(samples))
    # transcribe's own checking and defaults make the options; its generator is never
    # started, so nothing is encoded for the 0.1 s of silence it is handed.
    _unused, info = model.transcribe(
        np.zeros(SAMPLE_RATE // 10, np.float32), **{**options, "temperature": 0.0, "max_new_tokens": budget}
    )
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=info.language)
    frames = encoding.frames(len(samples))
    features = features_of(model, samples, frames, encoding.pad)
    if encoded is None:  # else made from these very features, to choose the language
        encoded = model.encode(features)
    # Only the first window is wanted: its content is the audio's own frames, so word
    # timings are aligned on them (num_frames), and what follows the last word is not
    # decoded again as a window of its own.
    content = features[:, : own_frames(len(samples)) + 1]
    found = next(
        iter(model.generate_segments(content, tokenizer, replace(info.transcription_options), False, encoded)), None
    )
    segments = [found] if found is not None else []
    prefix_tokens = len(tokenizer.encode(" " + options["prefix"].strip())) if options.get("prefix") else 0
    generated = sum(len(s.tokens) for s in segments) - prefix_tokens
    # Where the voice starts, from the loudness of the audio's own mel frames (not the
    # tail's). With a prefix the first words are the partials already typed: not checked.
    onset_s = None if prefix_tokens else voice_onset(content.mean(axis=0)) * FRAME / SAMPLE_RATE
    return segments, suspicious(segments, generated, budget, len(samples), encoding, onset_s)
