"""Long workloads for the soak and the recovery bench: the recordings joined into one
cycle, the cycle repeated into one stream, and the arithmetic that says whether each
utterance of each repeat was typed as the undisturbed reference typed it.

Utterance ids carry where the utterance starts in the stream (stages.vad:
`STREAM@000012340ms`), so an utterance is matched to its cycle and to the reference
utterance by its start, not by its position in the list: one extra or missing
utterance cannot shift every later comparison.
"""

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import pipeline
from bus.frames import SAMPLE_RATE
from stages.capture import audio

START_MS = re.compile(r"@(\d+)ms$")
MATCH_TOLERANCE_MS = 500  # vad's pre-roll: an onset may move by a window or two


@dataclass
class Cycle:
    samples: np.ndarray
    recordings: list[str]

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def ms(self) -> int:
        return len(self.samples) * 1000 // SAMPLE_RATE


def build_cycle(recordings: list[Path], gap_s: float) -> Cycle:
    """The recordings one after another, each followed by `gap_s` of silence (so every
    utterance ends by the VAD hearing silence)."""
    parts = []
    for recording in recordings:
        parts += [audio.read_all(recording), pipeline.silence(gap_s)]
    return Cycle(np.concatenate(parts), [recording.name for recording in recordings])


def cycles_for(cycle: Cycle, minutes: float) -> int:
    """How many repeats fill `minutes` (at least one)."""
    return max(1, round(minutes * 60 / cycle.seconds))


def write_stream(cycle: Cycle, repeats: int, path: Path, tail_s: float) -> Path:
    return pipeline.write_wav(path, np.concatenate([np.tile(cycle.samples, repeats), pipeline.silence(tail_s)]))


def start_ms(utt: str) -> int | None:
    found = START_MS.search(utt)
    return int(found.group(1)) if found else None


def dictated(row: dict) -> bool:
    """Typed by the router itself (a model stage types its answers, and reports them in
    a `generation` frame that may arrive after the replay has ended)."""
    return not row.get("llm_stage") and row.get("typed_by", "router") == "router"


def words(text: str) -> list[str]:
    """Lower-cased, punctuation aside: audio segmented afresh after a vad restart may
    start a window earlier or later, and Whisper may then capitalise or punctuate
    differently while hearing the same words."""
    return re.findall(r"[\w']+", text.lower())


def nearest_anchor(start: int, anchors: list[tuple[int, int]], cycle_ms: int) -> tuple[int, int, int] | None:
    """(distance ms, cycle, reference index) of the reference utterance whose start,
    shifted by a whole number of cycles, is nearest to `start`. An utterance at the
    very beginning of a cycle may start in the previous one (its pre-roll)."""
    candidates = []
    for anchor, index in anchors:
        cycle = round((start - anchor) / cycle_ms)
        candidates.append((abs(start - anchor - cycle * cycle_ms), cycle, index))
    return min(candidates, default=None)


def match(rows: list[dict], reference: list[dict], cycle_ms: int) -> tuple[dict, list[dict]]:
    """Pairs each row with (cycle, the reference row starting at the same place in the
    cycle); returns {(cycle, reference index): row} and the rows that match nothing."""
    anchors = [(start_ms(row["utt"]), index) for index, row in enumerate(reference) if start_ms(row["utt"]) is not None]
    matched, stray = {}, []
    for row in rows:
        start = start_ms(row["utt"])
        nearest = None if start is None else nearest_anchor(start, anchors, cycle_ms)
        if nearest is None or nearest[0] > MATCH_TOLERANCE_MS or nearest[1:] in matched:
            stray.append(row)
        else:
            matched[nearest[1:]] = row
    return matched, stray


def same_as(row: dict, expected: dict, answers_exact: bool = False) -> bool:
    """A dictated utterance is right when its words equal the reference's (Whisper and
    the router are deterministic on the same audio); a model's answer is seeded by its
    utterance id, so it differs from cycle to cycle and is right when it came in the
    same mode and is not empty. Against a replay of the same stream (`answers_exact`)
    the ids, and so the answers, are the same: an answer must then be the same too."""
    if dictated(expected):
        return dictated(row) and words(row["text"]) == words(expected["text"])
    if answers_exact:
        return row["text"] == expected["text"]
    return row.get("mode") == expected.get("mode") and bool(row["text"].strip())


def joined(row: dict | None, first: dict, second: dict) -> bool:
    """`row` holds the words of two reference utterances in one: the VAD heard no
    pause long enough between them this time (its recurrent state differs with what
    came before), which loses nothing."""
    return row is not None and dictated(row) and words(row["text"]) == words(first["text"]) + words(second["text"])


def aligned_words(expected: list[str], typed: list[str]) -> int:
    """How many expected words were typed, in order: the longest common subsequence.
    (difflib's matching blocks are not one: on text that repeats, such as one sentence
    said six times, they align a sentence with the wrong repeat and count too few.)"""
    previous = [0] * (len(typed) + 1)
    for word in expected:
        current = [0]
        for index, other in enumerate(typed):
            current.append(previous[index] + 1 if word == other else max(previous[index + 1], current[index]))
        previous = current
    return previous[-1]


def word_errors(expected: list[str], typed: list[str]) -> int:
    """Words substituted, deleted and inserted: the edit distance that word error rate
    divides by the number of expected words."""
    previous = list(range(len(typed) + 1))
    for row, word in enumerate(expected, start=1):
        current = [row]
        for index, other in enumerate(typed):
            current.append(min(previous[index] + (word != other), previous[index + 1] + 1, current[index] + 1))
        previous = current
    return previous[-1]


def word_error_rate(expected: list[str], typed: list[str]) -> float:
    return word_errors(expected, typed) / max(len(expected), 1)


def score(rows: list[dict], reference: list[dict], cycle_ms: int, repeats: int, answers_exact: bool = False) -> dict:
    """Utterances typed against expected over `repeats` cycles, and dictated words
    typed against expected, aligned per cycle (so a split or merged utterance costs
    nothing and a lost one costs its words)."""
    matched, stray = match(rows, reference, cycle_ms)
    right, merged, different, missing = 0, [], [], []
    expected_words = typed_words = 0
    for cycle in range(repeats):
        for index, expected in enumerate(reference):
            row = matched.get((cycle, index))
            following = reference[index + 1] if index + 1 < len(reference) else None
            previous = reference[index - 1] if index else None
            if row is not None and same_as(row, expected, answers_exact):
                right += 1
            elif following is not None and (cycle, index + 1) not in matched and joined(row, expected, following):
                merged.append({"cycle": cycle, "utt": row["utt"], "typed": row["text"]})
            elif row is None and previous is not None and joined(matched.get((cycle, index - 1)), previous, expected):
                merged.append({"cycle": cycle, "utt": expected["utt"], "typed": ""})
            elif row is None:
                missing.append({"cycle": cycle, "utt": expected["utt"], "expected": expected["text"]})
            else:
                different.append({"utt": row["utt"], "typed": row["text"], "expected": expected["text"]})
        wanted = [word for expected in reference if dictated(expected) for word in words(expected["text"])]
        typed_rows = [row for (row_cycle, _), row in matched.items() if row_cycle == cycle]
        typed_rows += [row for row in stray if cycle_of(row, cycle_ms) == cycle]
        got = [
            word
            for row in sorted(typed_rows, key=lambda row: start_ms(row["utt"]))
            if dictated(row)
            for word in words(row["text"])
        ]
        expected_words += len(wanted)
        typed_words += aligned_words(wanted, got)
    return {
        "expected": len(reference) * repeats,
        "typed": len(matched),
        "right": right,
        "merged": merged,
        "missing": missing,
        "different": different,
        "unexpected": [{"utt": row["utt"], "typed": row["text"]} for row in stray],
        "dictated_words_expected": expected_words,
        "dictated_words_right": typed_words,
        "errors": sum(len(row.get("errors", [])) for row in rows),
        "answer_outcomes": outcomes(rows),
    }


def outcomes(rows: list[dict]) -> dict:
    """How the model stages' answers ended (answered, cancelled by new speech, ...)."""
    counted: dict[str, int] = {}
    for row in rows:
        if not dictated(row):
            outcome = row.get("outcome", "unreported")
            counted[outcome] = counted.get(outcome, 0) + 1
    return counted


def score_whole(rows: list[dict], reference: list[dict]) -> dict:
    """`score` against an undisturbed replay of the same stream: one cycle, the whole of it."""
    return score(rows, reference, cycle_ms=sys.maxsize, repeats=1, answers_exact=True)


def cycle_of(row: dict, cycle_ms: int) -> int | None:
    """The cycle an utterance belongs to (one starting in a pre-roll's reach of the
    next cycle belongs to that one)."""
    start = start_ms(row["utt"])
    return None if start is None else (start + MATCH_TOLERANCE_MS) // cycle_ms
