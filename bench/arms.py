"""What the load and slow-machine benches share: one stream of a few requests, replayed
at real time through every process; what a user waits for in each of its parts; arms
taken in a rotating order; medians over repeats, ratios to a reference arm; the heat
reading at the start and end of a run.

A part of the stream is found by where its utterance starts (voxkey's utterance ids
carry it, bench.workload.start_ms), not by the mode it was routed to: a request whose
mode word was misheard is then still counted, as dictation, and says so.
"""

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import pipeline, workload
from bench.stats import ms_between, percentile
from bus.frames import SAMPLE_RATE
from stages.capture import audio
from voxkey import heat, replay

# name -> (recording, what the router should do with it, the request's words as said)
PARTS = {
    "dictation": (
        "dictate_report.wav",
        "dictate",
        "Please send the quarterly report to Maria before Friday afternoon.",
    ),
    "chat": ("chat_capital.wav", "chat", "What is the capital of France?"),
    # An answer that runs long (38 tokens through the pipeline, 121 from the raw engine with
    # the same seed): decoding at length, where spinning threads collapsed.
    "long chat": ("modes/006-p-chat-1-clean.flac", "chat", "How do I boil an egg?"),
    "converse": ("converse_math.wav", "converse", "What is seventeen times twenty three?"),
}
TOLERANCE_MS = 500  # vad's pre-roll: an utterance may start a little before its recording


@dataclass
class Part:
    name: str
    mode: str
    request: str
    start_ms: int
    end_ms: int
    cycle: int = 0


def build(audio_dir: Path, names: list[str], gaps_s: dict[str, float], path: Path, cycles: int = 1) -> list[Part]:
    """The recordings named, each followed by its gap of silence, `cycles` times over,
    as one WAV at `path`; where each part lies in it."""
    chunks, parts, at = [], [], 0
    for cycle in range(cycles):
        for name in names:
            recording, mode, request = PARTS[name]
            samples = audio.read_all(audio_dir / recording)
            gap = pipeline.silence(gaps_s[name])
            start, end = at * 1000 // SAMPLE_RATE, (at + len(samples)) * 1000 // SAMPLE_RATE
            parts.append(Part(name, mode, request, start, end, cycle))
            chunks += [samples, gap]
            at += len(samples) + len(gap)
    pipeline.write_wav(path, np.concatenate(chunks))
    return parts


def cycle_starts_ms(parts: list[Part]) -> list[int]:
    return [min(part.start_ms for part in parts if part.cycle == cycle) for cycle in sorted({p.cycle for p in parts})]


def part_of(utt: str, parts: list[Part]) -> Part | None:
    start = workload.start_ms(utt)
    if start is None:
        return None
    return next((part for part in parts if part.start_ms - TOLERANCE_MS <= start < part.end_ms), None)


def measures(rows: list[dict], parts: list[Part]) -> list[dict[str, dict]]:
    """Per cycle, per part: what the user waits for. Dictation: end of speech -> last
    key (of its last utterance, should it be cut in two). A request: end of speech ->
    first key and -> last key (none if it was cancelled), the model's decoding tokens/s,
    how it ended."""
    found: list[dict[str, dict]] = [{} for _ in cycle_starts_ms(parts)]
    for row in sorted(rows, key=lambda row: workload.start_ms(row["utt"]) or 0):
        part = part_of(row["utt"], parts)
        if part is None:
            continue
        measured = {
            "routed": row.get("mode", "dictate"),
            "last_key_ms": ms_between(row, "speech_end_ns", "last_key_ns"),
        }
        if part.mode != "dictate":
            measured.update(
                first_key_ms=ms_between(row, "speech_end_ns", "first_key_ns"),
                tokens_per_s=row.get("tokens_per_s"),
                tokens=row.get("generated_tokens"),
                outcome=row.get("outcome"),
            )
            if row.get("outcome") == "cancelled":  # the next speech cut it short: its last key is no answer's end
                measured["last_key_ms"] = None
        found[part.cycle][part.name] = measured  # the part's last utterance: what the user waited for
    return found


def median_of(runs: list[dict]) -> dict:
    """Across repeats: the median of each number; other values (how a request ended,
    the mode it was routed to) as the distinct values seen, joined."""
    merged = {}
    for key in dict.fromkeys(key for run in runs for key in run):
        values = [run.get(key) for run in runs]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            merged[key] = round(percentile(numbers, 50), 1)
        else:
            merged[key] = "/".join(sorted({str(v) for v in values if v is not None})) or None
    return merged


def medians(per_repeat: list[dict[str, dict]]) -> dict[str, dict]:
    """[{part: measures}] over repeats -> {part: median measures}."""
    names = dict.fromkeys(name for run in per_repeat for name in run)
    return {name: median_of([run[name] for run in per_repeat if name in run]) for name in names}


def ratio(value, reference) -> float | None:
    if not isinstance(value, (int, float)) or not isinstance(reference, (int, float)) or not reference:
        return None
    return round(value / reference, 2)


def ratios(arm: dict[str, dict], reference: dict[str, dict]) -> dict[str, dict]:
    """Each number of each part against the reference arm's (e.g. quiet)."""
    return {
        name: {key: ratio(value, reference.get(name, {}).get(key)) for key, value in measured.items()}
        for name, measured in arm.items()
    }


def cell(value, times) -> str | None:
    """A figure and its ratio to the reference arm, for a table."""
    if value is None:
        return None
    return f"{value} ({times}×)" if times is not None else str(value)


def rotation(arms: list[str], repeat: int) -> list[str]:
    """The arms in the order of this repeat: shifted by one each time, so no arm always
    comes first (a cold machine) or last (a hot one)."""
    shift = repeat % len(arms) if arms else 0
    return arms[shift:] + arms[:shift]


def heat_now() -> dict:
    return {"at": time.strftime("%H:%M:%S"), **heat.summary(heat.reading())}


def run(config: dict, stream: Path, observe=None) -> list[dict]:
    """One real-time replay through every process; its trace rows. `observe(frame)` is
    called as voxkey.replay calls it (frame None about twice a second), first once
    supervisord runs (the stages are its children from then on)."""

    def observing(_supervisor, frame) -> None:
        if observe is not None:
            observe(frame)

    state = replay.run(copy.deepcopy(config), str(stream), realtime=True, observe=observing, progress=None)
    return list(state.rows.values())


def save(results: dict, work: Path, markdown: str) -> dict:
    (work / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (work / "summary.md").write_text(markdown)
    return {**results, "files": [str(work / "results.json"), str(work / "summary.md")]}


def work_dir(out_dir: Path, kind: str) -> Path:
    work = out_dir / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    return work
