"""`voxkey bench --hallucination`: the evidence asr weighs, measured.

    python -m bench.hallucination [--split tune|held] [--no-pauses] [--no-cost] [--busy]

* Guards (tests/audio/short, made by bench.shortreplies, and tests/audio/noise_only.wav):
  each clip as the pipeline handles it (vad's cutting and Silero, then the asr stage's
  own decoding call and `judge`): what is typed. And the whole clip handed to asr as
  if vad had let it through (as a louder breath would), with what each guard alone
  makes of Whisper's evidence (decoded without Whisper's own no-speech skip, so the
  evidence is there to be weighed): non-speech must be dropped, every reply kept.
* Pauses (tests/audio/modes): the silence after the first word of each clip's first
  utterance, from Whisper's word timings, for clips that begin with a mode's name
  ("Chat. What is...", "Chat, what is...") and for look-alikes ("Chatting with Sam..."),
  so the router's threshold can be chosen on the `tune` split.
* Cost: what word timings add to recognising a 2.5 s utterance and jfk.flac (11 s),
  the median of 10 in this process; with --busy, beside a process spinning on a core.
"""

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench import modeset, raw, shortreplies
from bench.report import saved
from bench.stats import percentile
from bus import config as configuration
from bus.text import words
from stages.asr import stage as asr_stage
from stages.capture import audio
from stages.vad import segmenting

AUDIO = Path(__file__).resolve().parent.parent / "tests" / "audio"
RULES = ("not_voiced", "not_speech", "low_confidence", "repetitive")
NEUTRAL = asr_stage.Guards(0, 1.0, -math.inf, math.inf, math.inf)  # drops nothing
COST_CLIPS = ("dictate_meeting.wav", "jfk.flac")
COST_REPEATS = 10


def alone(guards: asr_stage.Guards, rule: str) -> asr_stage.Guards:
    """Guards with only `rule` in force."""
    fields = {
        "not_voiced": ("min_voiced_ms",),
        "not_speech": ("no_speech_threshold",),
        "low_confidence": ("min_avg_logprob",),
        "repetitive": ("max_compression_ratio", "max_words_per_voiced_s"),
    }[rule]
    return dataclasses.replace(NEUTRAL, **{field: getattr(guards, field) for field in fields})


def voiced_ms(samples: np.ndarray, threshold: float) -> int:
    """How much of `samples` (int16) Silero judges speech, counted as vad counts it."""
    model = segmenting.StreamingSilero(segmenting.silero_path())
    window = segmenting.WINDOW
    padded = np.concatenate([samples, np.zeros(-len(samples) % window, np.int16)])
    probs = [model(padded[o : o + window].astype(np.float32) / 32768.0) for o in range(0, len(padded), window)]
    return sum(prob >= threshold for prob in probs) * window * 1000 // segmenting.SAMPLE_RATE


def main_word(text: str) -> str:
    """The word a reply is recognised by: its longest ("Thank you." -> "thank")."""
    return max(words(text), key=len)


class Asr:
    """The vad stage's cutting and the asr stage's recognition and guards, in process."""

    def __init__(self, config: dict):
        self.vad = config["stages"]["vad"]
        self.settings = config["stages"]["asr"]
        self.guards = asr_stage.Guards.of(self.settings)
        self.whisper = raw.Whisper(self.settings)
        # Whisper skips a window it rates not speech (and is unsure of): decoded without
        # the skip, the evidence on it can be weighed guard by guard.
        self.unskipped = SimpleNamespace(
            model=self.whisper.model, settings={**self.settings, "no_speech_threshold": 1.0}
        )

    def segments(self, samples: np.ndarray, unskipped: bool = False, timed: bool = False) -> list:
        engine = self.unskipped if unskipped else self.whisper
        return asr_stage.Asr._transcribe(engine, samples.astype(np.float32) / 32768.0, timed=timed)

    def typed(self, samples: np.ndarray) -> list[tuple[str, str]]:
        """(text, dropped) of each utterance, as the pipeline would type them."""
        return [
            asr_stage.judge(self.segments(u.audio), self.guards, u.voiced_ms) for u in raw.utterances(samples, self.vad)
        ]

    def whole(self, samples: np.ndarray) -> dict:
        """The whole clip as one utterance: the stage's verdict, and each guard's alone."""
        voiced = voiced_ms(samples, float(self.vad["threshold"]))
        evidence = self.segments(samples, unskipped=True)
        text, dropped = asr_stage.judge(self.segments(samples), self.guards, voiced)
        return {
            "voiced_ms": voiced,
            "evidence": [
                {
                    "text": s.text.strip(),
                    "no_speech_prob": round(s.no_speech_prob, 3),
                    "avg_logprob": round(s.avg_logprob, 3),
                    "compression_ratio": round(s.compression_ratio, 2),
                }
                for s in evidence
            ],
            "fires": {rule: asr_stage.judge(evidence, alone(self.guards, rule), voiced)[1] == rule for rule in RULES},
            "text": text,
            "dropped": dropped,
        }


def clips(split: str | None) -> list[tuple[dict, np.ndarray]]:
    """(manifest entry, int16 samples) of tests/audio/short, and noise_only.wav (held)."""
    manifest = json.loads((shortreplies.OUT / "MANIFEST.json").read_text())
    found = [(e, modeset.clip(shortreplies.OUT, e)) for e in manifest["clips"] if split in (None, e["split"])]
    if split in (None, "held"):
        noise = {"file": "../noise_only.wav", "text": "", "kind": "noise", "split": "held"}
        found.append((noise, audio.read_all(AUDIO / "noise_only.wav")))
    return found


def guards(asr: Asr, split: str | None, say) -> list[dict]:
    rows = []
    for entry, samples in clips(split):
        heard = asr.typed(samples)
        typed = " ".join(text for text, _ in heard if text)
        row = {
            **{key: entry.get(key) for key in ("file", "text", "kind", "split", "speed", "snr")},
            "vad_utterances": len(heard),
            "vad_dropped": [dropped for _, dropped in heard if dropped],
            "typed": typed,
            "whole": asr.whole(samples),
        }
        if entry["text"]:
            row["recognised"] = main_word(entry["text"]) in words(typed or row["whole"]["text"])
        rows.append(row)
        say(f"hallucination: {entry['file']}: typed {typed!r}, whole clip {row['whole']['text']!r}")
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per split, replies and non-speech: what is typed, and what each guard drops."""
    found = []
    for split in sorted({row["split"] for row in rows}):
        for speech in (True, False):
            group = [row for row in rows if row["split"] == split and bool(row["text"]) == speech]
            if not group:
                continue
            found.append(
                {
                    "split": split,
                    "clips": "replies" if speech else "non-speech",
                    "count": len(group),
                    "vad_sent": sum(row["vad_utterances"] > 0 for row in group),
                    "typed": sum(bool(row["typed"]) for row in group),
                    **{rule: sum(row["whole"]["fires"][rule] for row in group) for rule in RULES},
                    "whole_dropped": sum(bool(row["whole"]["dropped"]) for row in group),
                    "recognised": sum(row.get("recognised", False) for row in group) if speech else None,
                }
            )
    return found


def ranges(rows: list[dict]) -> list[dict]:
    """Per split and kind of clip, the span of each piece of evidence (whole clips)."""
    found = []
    for split in sorted({row["split"] for row in rows}):
        for speech in (True, False):
            group = [row["whole"] for row in rows if row["split"] == split and bool(row["text"]) == speech]
            segments = [s for whole in group for s in whole["evidence"]]
            if not group:
                continue

            def span(values):
                return f"{min(values):g} to {max(values):g}" if values else None

            found.append(
                {
                    "split": split,
                    "clips": "replies" if speech else "non-speech",
                    "voiced_ms": span([whole["voiced_ms"] for whole in group]),
                    **{key: span([s[key] for s in segments]) for key in ("no_speech_prob", "avg_logprob")},
                    "compression_ratio": span([s["compression_ratio"] for s in segments]),
                }
            )
    return found


def first_mark(text: str) -> str:
    """The punctuation after a text's first word ("Chat. What..." -> ".", "Jet lag" -> "")."""
    first = text.split()[0]
    return first[-1] if first[-1] in ".," else ""


def pauses(asr: Asr, say, directory: Path = modeset.OUT) -> dict:
    """The pause after the first word of each mode clip that vad leaves whole, per split
    and kind ("prefixed." is a mode's name then a period, "lookalike," a look-alike with a
    comma after its first word). A clip vad cut after its first word (the name said
    alone) is counted, not measured: its pause is vad's cut, not a gap between words."""
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    found: dict = {}
    cut: dict = {}
    for entry in manifest["clips"]:
        kind = entry["kind"] + first_mark(entry["text"])
        utterances = raw.utterances(modeset.clip(directory, entry), asr.vad)
        if len(utterances) != 1:
            cut.setdefault(entry["split"], {}).setdefault(kind, 0)
            cut[entry["split"]][kind] += 1
            continue
        segments = asr.segments(utterances[0].audio, timed=True)
        after = asr_stage.pauses_after(asr_stage.kept_words(segments, asr.guards), first=1)
        found.setdefault(entry["split"], {}).setdefault(kind, []).extend(after)
        say(f"pauses: {entry['file']}: {after} ms after the first word")
    return {
        split: {
            kind: {
                "count": len(values),
                "cut_by_vad": cut.get(split, {}).get(kind, 0),
                "min": min(values, default=None),
                "median": percentile(values, 50),
                "max": max(values, default=None),
                "at_least_200ms": sum(value >= 200 for value in values),
                "values": sorted(values),
            }
            for kind, values in sorted(kinds.items())
        }
        for split, kinds in sorted(found.items())
    }


def cost(asr: Asr, busy: bool) -> list[dict]:
    """Median ms of a recognition with and without word timings, per clip."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        found = []
        for name in COST_CLIPS:
            samples = audio.read_all(AUDIO / name)
            row = {"clip": name, "audio_s": round(len(samples) / segmenting.SAMPLE_RATE, 2), "busy": busy}
            runs: dict = {False: [], True: []}
            for _ in range(COST_REPEATS):
                for timed in (False, True):  # in turn, so a neighbour's load falls on both alike
                    started = time.perf_counter()
                    asr.segments(samples, timed=timed)
                    runs[timed].append((time.perf_counter() - started) * 1000)
            row["plain_ms"], row["timed_ms"] = (round(percentile(runs[timed], 50), 1) for timed in (False, True))
            row["added_ms"] = round(row["timed_ms"] - row["plain_ms"], 1)
            found.append(row)
        return found
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def measure(
    config: dict,
    out_dir: Path,
    say,
    split: str | None = None,
    with_pauses: bool = True,
    with_cost: bool = True,
    busy: bool = False,
) -> dict:
    started = time.perf_counter()
    asr = Asr(config)
    rows = guards(asr, split, say)
    results = {
        "guards": dataclasses.asdict(asr.guards),
        "summary": summary(rows),
        "ranges": ranges(rows),
        "pauses": pauses(asr, say) if with_pauses else None,
        "cost": (cost(asr, False) + (cost(asr, True) if busy else [])) if with_cost else None,
        "rows": rows,
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    return saved(results, out_dir, "hallucination")


def markdown(results: dict) -> str:
    from bench.report import table

    lines = [
        f"# Hallucination guards ({', '.join(f'{k} {v}' for k, v in results['guards'].items())})",
        "",
        "Typed: through vad and asr as the pipeline runs. Each guard alone, and the stage's verdict: the whole "
        "clip handed to asr, as if vad had let it through.",
        "",
    ]
    lines += table(
        ["split", "clips", "n", "vad sent", "typed", *RULES, "whole clip dropped", "recognised"],
        [
            [s["split"], s["clips"], s["count"], s["vad_sent"], s["typed"], *(s[r] for r in RULES)]
            + [s["whole_dropped"], s["recognised"]]
            for s in results["summary"]
        ],
    )
    lines += ["Evidence (whole clips; Whisper's own no-speech skip off):", ""]
    lines += table(
        ["split", "clips", "voiced ms", "no_speech_prob", "avg_logprob", "compression ratio"],
        [
            [r["split"], r["clips"], r["voiced_ms"], r["no_speech_prob"], r["avg_logprob"], r["compression_ratio"]]
            for r in results["ranges"]
        ],
    )
    if results["pauses"]:
        lines += ["Pause after the first word (ms), tests/audio/modes, clips vad left whole:", ""]
        lines += table(
            ["split", "clips", "n", "cut by vad", "min", "median", "max", ">= 200 ms"],
            [
                [split, kind, p["count"], p["cut_by_vad"], p["min"], p["median"], p["max"], p["at_least_200ms"]]
                for split, kinds in results["pauses"].items()
                for kind, p in kinds.items()
            ],
        )
    if results["cost"]:
        lines += ["Word timings' cost (median of 10, ms):", ""]
        lines += table(
            ["clip", "audio s", "beside a busy core", "plain", "word timings", "added"],
            [
                [c["clip"], c["audio_s"], c["busy"], c["plain_ms"], c["timed_ms"], c["added_ms"]]
                for c in results["cost"]
            ],
        )
    if "file" in results:
        lines += [f"Written to {results['file']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hallucination", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tune", "held"), default=None, help="default: both")
    parser.add_argument("--no-pauses", action="store_true")
    parser.add_argument("--no-cost", action="store_true")
    parser.add_argument("--busy", action="store_true", help="also measure the cost beside a spinning process")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    results = measure(
        configuration.load(),
        Path(args.out),
        lambda message: print(message, file=sys.stderr, flush=True),
        args.split,
        not args.no_pauses,
        not args.no_cost,
        args.busy,
    )
    print(markdown(results))


if __name__ == "__main__":
    main()
