"""What asr keeps of Whisper's segments, the guards that decide whether a transcript is
typed, and the pauses after its first words; pure functions (stage.py calls them)."""

import re
from dataclasses import dataclass, field

import numpy as np

from bus.frames import SAMPLE_RATE
from bus.text import plain, words

VAD_WINDOW = 512  # samples per character of Speech.voicing (Silero's window)


@dataclass
class Segment:
    """What voxkey keeps of a faster-whisper segment: its text and the evidence on it."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float  # gzip ratio of the text: a decoder stuck in a loop compresses well
    words: list = field(default_factory=list)  # faster-whisper Words (start, end in s), if timed


@dataclass(frozen=True)
class Guards:
    """The evidence a transcript must show to be typed ([stages.asr] in bus/defaults.toml)."""

    min_voiced_ms: int
    no_speech_threshold: float
    min_avg_logprob: float
    max_compression_ratio: float
    max_words_per_voiced_s: float

    @classmethod
    def of(cls, settings: dict) -> "Guards":
        return cls(
            int(settings["min_voiced_ms"]),
            float(settings["no_speech_threshold"]),
            float(settings["min_avg_logprob"]),
            float(settings["max_compression_ratio"]),
            float(settings["max_words_per_voiced_s"]),
        )


def not_spoken(segment: Segment, guards: Guards) -> str:
    """The guard that finds Whisper's own evidence says this segment is not speech, or ""."""
    if segment.no_speech_prob > guards.no_speech_threshold:
        return "not_speech"
    if segment.avg_logprob < guards.min_avg_logprob:
        return "low_confidence"
    return ""


def looping(segments: list[Segment], text: str, guards: Guards, voiced_ms: int) -> bool:
    """Whether the decoder went round in a loop: text that repeats itself (gzips well)
    and holds more words than the voice in the audio could. Repetition alone is no
    evidence: people say a sentence twice, and that text gzips just as well."""
    repeats = any(s.compression_ratio > guards.max_compression_ratio for s in segments)
    return repeats and len(words(text)) > guards.max_words_per_voiced_s * voiced_ms / 1000


def judge(segments: list[Segment], guards: Guards, voiced_ms: int | None) -> tuple[str, str]:
    """(text to type, the rule it is dropped by); pure, so the guards are testable on
    their own. Only evidence decides, never the words: `voiced_ms` is how much of the
    audio vad's Silero judged speech (None: not known, as for partials, whose speech
    is going on). No segments: Whisper wrote nothing (it skips a window it rates not
    speech, by the same no_speech_threshold, when it is also unsure of it)."""
    if voiced_ms is not None and voiced_ms < guards.min_voiced_ms:
        return "", "not_voiced"
    if not segments:
        return "", "not_speech"
    verdicts = [not_spoken(s, guards) for s in segments]
    text = " ".join(s.text.strip() for s, verdict in zip(segments, verdicts) if not verdict).strip()
    if all(verdicts):
        return "", verdicts[0]
    if not plain(text):
        return "", "no_words"
    kept = [s for s, verdict in zip(segments, verdicts) if not verdict]
    if voiced_ms is not None and looping(kept, text, guards, voiced_ms):
        return "", "repetitive"
    return text, ""


def kept_words(segments: list[Segment], guards: Guards) -> list:
    """The timed words of the segments `judge` keeps."""
    return [word for s in segments if not not_spoken(s, guards) for word in s.words]


def pauses_after(words: list, voicing: str = "", first: int = 3) -> list[int]:
    """The silence after each of the `first` words, in ms; a transcript of n words has
    min(first, n - 1). With vad's `voicing` (Speech.voicing): each run of windows
    Silero judged not speech, within the speech (not the pre-roll or the tail), is the
    pause at the first word boundary whose two words' span holds it (else the nearest).
    tiny.en's timings give a pause's silence to one of the words beside it, so they say
    only roughly where a boundary is; the audio says whether there is a pause. Without
    voicing: from the word's end to the next word's start (never below 0: Whisper's
    timings may overlap)."""
    pairs = list(zip(words, words[1:]))
    if not voicing.strip(".") or not pairs:
        return [max(0, round((after.start - word.end) * 1000)) for word, after in pairs[:first]]
    pauses = [0] * len(pairs)
    for start, end in quiet_runs(voicing):
        holding = [i for i, (word, after) in enumerate(pairs) if at(word.start) <= start and end <= at(after.end) + 1]
        middle = (start + end) / 2
        nearest = min(range(len(pairs)), key=lambda i: abs(at(pairs[i][0].end) + at(pairs[i][1].start) - 2 * middle))
        boundary = holding[0] if holding else nearest
        pauses[boundary] = max(pauses[boundary], (end - start) * VAD_WINDOW * 1000 // SAMPLE_RATE)
    return pauses[:first]


def at(seconds: float) -> int:
    """The voicing window a time in the utterance falls in."""
    return int(seconds * SAMPLE_RATE) // VAD_WINDOW


def quiet_runs(voicing: str) -> list[tuple[int, int]]:
    """(first window, window after the last) of each run of "." between two "#"."""
    return [(match.start(), match.end()) for match in re.finditer(r"(?<=#)\.+(?=#)", voicing)]


# A first word that swallowed the one before it. The short encoding sometimes starts its
# transcript at the second word said, and aligns that word over both: "with the team..."
# for "Converse with the team...", "with" timed 0-0.74 s where the window heard
# "Congress" 0-0.68 and "with" 0.68-0.92. Measured with tiny.en on every set of
# `voxkey bench --recognition` (seed 22; 263 short recognitions of two words or more,
# the same again padded): the two first words lost took 1.74 and 3.78 times what their
# letters need at the utterance's own pace, with Whisper's probability 0.12 for both; of
# the words kept, those stretched as far (short words spoken slowly: "So", "ask", 1.5-2.3)
# all had 0.47 or more, and those as unsure (a mode's name misheard: "Dick Hate", "Jeff",
# 0.10-0.3) were stretched 1.31 at most. Of the padded recognitions the rule flags two:
# the window's own lost first word ("with the team..." at 1.25x speed in 10 dB of
# noise) and "Dick, Dave." for "Dictate.".
STRETCHED = 1.5  # times the time its letters take at the utterance's pace
UNSURE_WORD = 0.3  # Whisper's probability of the word
ONSET_SHARE = 0.5  # voice starts where a frame is this far from the floor to the peak


def voice_onset(loudness) -> int:
    """The first frame of voice in per-frame loudness (e.g. a log-mel frame's mean):
    the first frame louder than halfway from the quiet floor (10th percentile) to the
    peak (99th), so a steady noise floor does not count as voice. 0 if none is."""
    if len(loudness) == 0:
        return 0
    floor, peak = float(np.percentile(loudness, 10)), float(np.percentile(loudness, 99))
    above = np.flatnonzero(np.asarray(loudness) > floor + ONSET_SHARE * (peak - floor))
    return int(above[0]) if len(above) else 0


def first_word_swallowed(timed: list, onset_s: float) -> bool:
    """Whether the first of these timed words (faster-whisper Words: word, start, end
    in s, probability) took in the audio of words before it that were not written: it
    spans, from where the voice starts (`onset_s`), at least STRETCHED times what its
    letters take at the pace of the whole transcript, and Whisper is unsure of it. A
    long first word alone is no evidence (people draw out "So..."), nor an unsure one
    (a name misheard): a word aligned over another's audio is both."""
    if len(timed) < 2:
        return False  # one word: no pace of the utterance to hold it against
    spoken = timed[-1].end - onset_s
    letters = [sum(map(len, words(w.word))) for w in timed]
    if spoken <= 0 or not letters[0] or not sum(letters):
        return False
    first = timed[0].end - max(timed[0].start, onset_s)
    needs = letters[0] * spoken / sum(letters)
    return first >= STRETCHED * needs and timed[0].probability < UNSURE_WORD
