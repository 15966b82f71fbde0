"""`voxkey bench --recognition`: the utterance-length encoding against the padded 30 s
window ([stages.asr] `encode`), on every set of speech we have, in one run.

Each recording is cut into utterances as the vad stage cuts it (raw.utterances: its
Segmenter and streaming Silero), and each utterance recognised by the asr stage's own
call (stages.asr.stage.transcribe, with word timings, as a final is) and judged by its
guards; both arms share one loaded model and differ only in `encode`. Per set and arm:
word errors against what was said (bus.text.words: case and punctuation aside),
texts typed for sounds that are not speech, utterances whose text repeats a run of
words (encoding.repeated_run) or ends longer than what was said (two words or more:
an invented ending), how often the short encoding fell back to the window, and the
median recognition time (wall, and the CPU this process used: the machine is shared).
Sets: tests/audio/modes (the mode-prefix clips), the endpointing streams (bench.
endpointing.build_stream: without and with seeded pauses), jfk.flac, tests/audio/short
(replies; and breath, clicks, silence, noise), the tests/audio fixtures, and long
utterances of fixtures joined (seeded order) to near [stages.vad] max_utterance_s.
Then recognition time by clip length (1 to 28 s of distinct fixture speech, joined).
"""

import json
import os
import random
import time
from pathlib import Path

import numpy as np

from bench import endpointing, hallucination, modeset, raw
from bench.procs import foreign_load, machine_reading
from bench.report import saved
from bench.stats import percentile
from bench.workload import word_errors
from bus.frames import SAMPLE_RATE
from bus.text import words
from stages.asr import encoding
from stages.asr import stage as asr_stage
from stages.capture import audio

ARMS = {"padded": {"encode": "window"}, "utterance": {"encode": "utterance"}}
CLIP_SECONDS = (1, 2, 3, 4, 8, 16, 28)
REPEATS = 3  # each timing is the median of this many, arms alternated
SEED = 22  # the pause streams and the long utterances; VOXKEY_BENCH_SEED overrides it
LONG_UTTERANCES = 3
JOIN_GAP_S = 0.25  # between fixtures joined into one long utterance: shorter than any end of speech
# Distinct sentences, so a clip made of them never says the same words twice.
SPEECH = (
    "jfk.flac",
    "dictate_report.wav",
    "clarify_launch.wav",
    "dictate_meeting.wav",
    "converse_math.wav",
    "chat_capital.wav",
    "mode_switch.wav",
    "cmd_scratch_that.wav",
    "cmd_new_line.wav",
    "cmd_cancel.wav",
)


class Recogniser:
    """One Whisper model; each arm is the asr stage's settings with its `encode`."""

    def __init__(self, config: dict):
        self.vad = config["stages"]["vad"]
        settings = config["stages"]["asr"]
        self.guards = asr_stage.Guards.of(settings)
        self.whisper = raw.Whisper({**settings, "encode": "window"})
        self.settings = {arm: {**settings, **overrides} for arm, overrides in ARMS.items()}

    def recognise(self, arm: str, samples: np.ndarray) -> tuple[list, str, float, float]:
        """(segments, fell back because, wall ms, CPU ms) for int16 `samples`, timed."""
        floats = samples.astype(np.float32) / 32768.0
        cpu, wall = time.process_time(), time.perf_counter()
        segments, why = asr_stage.transcribe(self.whisper.model, self.settings[arm], floats, timed=True)
        return segments, why, (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000

    def utterance(self, arm: str, samples: np.ndarray, voiced_ms: int | None) -> dict:
        segments, why, wall_ms, cpu_ms = self.recognise(arm, samples)
        text, dropped = asr_stage.judge(segments, self.guards, voiced_ms)
        said = " ".join(s.text.strip() for s in segments)
        return {
            "audio_s": round(len(samples) / SAMPLE_RATE, 2),
            "text": text,
            "dropped": dropped,
            "raw": said,
            "fell_back": why,
            "repeats": encoding.repeated_run(words(said)),
            "ms": round(wall_ms, 1),
            "cpu_ms": round(cpu_ms, 1),
        }


def cut(recogniser: Recogniser, samples: np.ndarray) -> list[tuple[np.ndarray, int | None]]:
    """(audio, voiced ms) of each utterance vad would send."""
    return [(u.audio, u.voiced_ms) for u in raw.utterances(samples, recogniser.vad)]


def joined(names: list[str], audio_dir: Path, seconds: float) -> tuple[np.ndarray, str]:
    """Fixtures in a row (cycling through `names`) until `seconds`, with short quiet
    between; and what they say. A fixture that would not fit is left out."""
    gap = np.zeros(int(JOIN_GAP_S * SAMPLE_RATE), np.int16)
    pieces, said, length = [], [], 0
    for name in names:
        samples = audio.read_all(audio_dir / name)
        if length + len(samples) > seconds * SAMPLE_RATE:
            continue
        pieces += [samples, gap]
        said.append(endpointing.spoken_text(audio_dir, name))
        length += len(samples) + len(gap)
    return np.concatenate(pieces), " ".join(said)


def recordings(config: dict, audio_dir: Path, rng: random.Random) -> dict[str, list[dict]]:
    """Per set: items with a name, int16 samples, what was said ("" for non-speech) and
    `whole` (recognised as one utterance, not cut by vad)."""
    sets: dict[str, list[dict]] = {}
    manifest = json.loads((modeset.OUT / "MANIFEST.json").read_text())
    sets["modes"] = [
        {"name": e["file"], "samples": modeset.clip(modeset.OUT, e), "said": e["text"]} for e in manifest["clips"]
    ]
    streams = {
        "sentences": endpointing.build_stream(list(endpointing.SENTENCES), audio_dir, None),
        "pauses": endpointing.build_stream(list(endpointing.SENTENCES), audio_dir, rng),
    }
    sets["endpointing streams"] = [
        {"name": name, "samples": samples, "said": " ".join(p.text for p in placed)}
        for name, (samples, placed) in streams.items()
    ]
    sets["jfk.flac"] = [
        {
            "name": "jfk.flac",
            "samples": audio.read_all(audio_dir / "jfk.flac"),
            "said": endpointing.spoken_text(audio_dir, "jfk.flac"),
        }
    ]
    short = hallucination.clips(None)
    # Whole, as bench.hallucination takes them: vad finds no utterance in most non-speech.
    sets["short replies"] = [
        {"name": e["file"], "samples": s, "said": e["text"], "whole": True} for e, s in short if e["text"]
    ]
    sets["short non-speech"] = [
        {"name": e["file"], "samples": s, "said": "", "whole": True} for e, s in short if not e["text"]
    ]
    files = json.loads((audio_dir / "MANIFEST.json").read_text())["files"]
    sets["fixtures"] = [
        {"name": name, "samples": audio.read_all(audio_dir / name), "said": endpointing.spoken_text(audio_dir, name)}
        for name, entry in files.items()
        if entry["text"] and name != "jfk.flac"
    ]
    longest = float(config["stages"]["vad"]["max_utterance_s"])
    sets["long utterances"] = []
    for index in range(LONG_UTTERANCES):
        order = list(SPEECH)
        rng.shuffle(order)
        samples, said = joined(order, audio_dir, longest - index * 2)
        sets["long utterances"].append({"name": f"joined-{index}", "samples": samples, "said": said, "whole": True})
    return sets


def measure_set(recogniser: Recogniser, items: list[dict], say, name: str) -> dict:
    """Per arm: the set's summary and a row per item."""
    threshold = float(recogniser.vad["threshold"])
    result = {}
    pieces = []
    for item in items:
        if item.get("whole"):
            pieces.append([(item["samples"], hallucination.voiced_ms(item["samples"], threshold))])
        else:
            pieces.append(cut(recogniser, item["samples"]))
    for arm in ARMS:
        say(f"recognition: {name}: {arm} ({sum(map(len, pieces))} utterances)")
        rows = []
        for item, utterances in zip(items, pieces):
            heard = [recogniser.utterance(arm, samples, voiced) for samples, voiced in utterances]
            typed = " ".join(h["text"] for h in heard if h["text"]).strip()
            expected, got = words(item["said"]), words(typed)
            rows.append(
                {
                    "name": item["name"],
                    "said": item["said"],
                    "typed": typed,
                    "word_errors": word_errors(expected, got),
                    "words": len(expected),
                    "longer": len(got) - len(expected) >= 2 if expected else False,
                    "typed_on_non_speech": bool(got) and not expected,
                    "utterances": heard,
                }
            )
        result[arm] = {"summary": summary(rows), "rows": rows}
    return result


def summary(rows: list[dict]) -> dict:
    heard = [h for row in rows for h in row["utterances"]]
    fell = [h["fell_back"] for h in heard if h["fell_back"]]
    errors, spoken = sum(r["word_errors"] for r in rows), sum(r["words"] for r in rows)
    return {
        "items": len(rows),
        "utterances": len(heard),
        "words": spoken,
        "word_errors": errors,
        "wer": round(errors / spoken, 4) if spoken else None,
        "typed_on_non_speech": sum(r["typed_on_non_speech"] for r in rows),
        "non_speech": sum(not r["words"] for r in rows),
        "repeats": sum(h["repeats"] for h in heard),
        "longer_than_said": sum(r["longer"] for r in rows),
        "fell_back": {why: fell.count(why) for why in sorted(set(fell))},
        "median_ms": rounded(percentile([h["ms"] for h in heard], 50)),
        "median_cpu_ms": rounded(percentile([h["cpu_ms"] for h in heard], 50)),
        "median_audio_s": rounded(percentile([h["audio_s"] for h in heard], 50), 2),
    }


def rounded(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)


def by_length(recogniser: Recogniser, audio_dir: Path) -> list[dict]:
    """Recognition time of clips of growing length, of distinct speech."""
    speech, _said = joined(list(SPEECH) * 2, audio_dir, max(CLIP_SECONDS) + 20)
    rows = []
    for seconds in CLIP_SECONDS:
        clip = speech[: seconds * SAMPLE_RATE]
        runs = {arm: [] for arm in ARMS}
        for _ in range(REPEATS):
            for arm in ARMS:  # alternated, so a busy moment weighs on both alike
                runs[arm].append(recogniser.recognise(arm, clip))
        row = {"seconds": seconds}
        for arm, found in runs.items():
            row[f"{arm}_ms"] = round(percentile([r[2] for r in found], 50), 1)
            row[f"{arm}_cpu_ms"] = round(percentile([r[3] for r in found], 50), 1)
            row[f"{arm}_fell_back"] = found[0][1]
        row["cpu_ratio"] = round(row["utterance_cpu_ms"] / row["padded_cpu_ms"], 2) if row["padded_cpu_ms"] else None
        rows.append(row)
    return rows


def verdict(results: dict) -> dict:
    """The rule for defaulting to the utterance encoding: no more word errors than the
    window on any set (one word of slack each), at most half its time for 1-4 s."""
    worse = {
        name: arms["utterance"]["summary"]["word_errors"] - arms["padded"]["summary"]["word_errors"]
        for name, arms in results["sets"].items()
    }
    short = [row["cpu_ratio"] for row in results["by_length"] if row["seconds"] <= 4]
    accurate = all(extra <= 1 for extra in worse.values())
    fast = bool(short) and all(ratio is not None and ratio <= 0.5 for ratio in short)
    return {"extra_word_errors": worse, "short_cpu_ratios": short, "accurate": accurate, "fast": fast}


def measure(config: dict, audio_dir: Path, out_dir: Path, say) -> dict:
    seed = int(os.environ.get("VOXKEY_BENCH_SEED", SEED))
    say(f"recognition: seed {seed}")
    started, before = time.perf_counter(), machine_reading()
    recogniser = Recogniser(config)
    sets = recordings(config, audio_dir, random.Random(seed))
    results: dict = {"seed": seed, "settings": encoding_settings(config), "sets": {}}
    for name, items in sets.items():
        results["sets"][name] = measure_set(recogniser, items, say, name)
    say("recognition: time by clip length")
    results["by_length"] = by_length(recogniser, audio_dir)
    results["load"] = foreign_load(before, machine_reading(), os.cpu_count() or 1)
    results["threads"] = recogniser.whisper.threads
    results["verdict"] = verdict(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return saved(results, out_dir, "recognition")


def encoding_settings(config: dict) -> dict:
    settings = config["stages"]["asr"]
    return {key: settings[key] for key in settings if key.startswith("encode")}


def markdown(results: dict) -> str:
    from bench.report import table

    load = results["load"]
    lines = [
        "# Recognition: the utterance's own frames against the padded 30 s window",
        "",
        f"Settings {results['settings']}, {results['threads']} threads, seed {results['seed']}. Other processes "
        f"took {load['other_processes_share']:.0%} of the CPUs meanwhile (stolen {load['stolen_share']:.0%}): "
        "wall times are inflated by them, CPU times (this process's) much less.",
        "",
    ]
    rows = []
    for name, arms in results["sets"].items():
        for arm, result in arms.items():
            s = result["summary"]
            fell = ", ".join(f"{why} {n}" for why, n in s["fell_back"].items()) or "–"
            rows.append(
                [
                    name,
                    arm,
                    f"{s['items']} / {s['utterances']}",
                    f"{s['word_errors']} / {s['words']}",
                    s["wer"],
                    f"{s['typed_on_non_speech']} / {s['non_speech']}" if s["non_speech"] else "–",
                    s["repeats"],
                    s["longer_than_said"],
                    fell if arm != "padded" else "–",
                    s["median_audio_s"],
                    s["median_ms"],
                    s["median_cpu_ms"],
                ]
            )
    header = ["set", "encode", "items / utterances", "word errors", "WER", "typed on non-speech", "repeats"]
    header += ["≥2 words longer", "fell back", "median audio s", "median ms", "median CPU ms"]
    lines += table(header, rows)
    lines += [f"Recognition time by clip length (medians of {REPEATS}, word timings on):", ""]
    lines += table(
        ["clip s", "padded ms", "padded CPU ms", "utterance ms", "utterance CPU ms", "CPU ratio", "fell back"],
        [
            [
                r["seconds"],
                r["padded_ms"],
                r["padded_cpu_ms"],
                r["utterance_ms"],
                r["utterance_cpu_ms"],
                r["cpu_ratio"],
                r["utterance_fell_back"] or "–",
            ]
            for r in results["by_length"]
        ],
    )
    v = results["verdict"]
    lines += [
        f"Extra word errors of the utterance encoding per set: {v['extra_word_errors']}; CPU ratio for 1-4 s: "
        f"{v['short_cpu_ratios']}. Default rule (no set more than one word worse, at most half the time for 1-4 s): "
        f"{'met' if v['accurate'] and v['fast'] else 'not met'}.",
        "",
        f"Took {results['seconds']} s; results in {results.get('file', '?')}.",
    ]
    return "\n".join(lines)
