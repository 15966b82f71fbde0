"""`voxkey bench --modes`: are spoken mode prefixes heard, and look-alikes left alone?

Each clip of tests/audio/modes (made by bench.modeset) is cut into utterances as the
vad stage cuts it, its first utterance recognised as the asr stage recognises it (the
stage's own decoding call, model and settings, and its guards), and the transcript
routed by the router's pure `decide` in dictate mode. Per split (`tune`, `held`):
* routing accuracy: of the clips that begin with a mode's name, how many reach that
  mode with the name taken off (one utterance, the right mode, the rest as its text;
  or the name alone, cut off by vad at its pause, then the rest);
* false switches: of the clips that only begin like a name ("Yet another...",
  "Conversely, ..."), how many were not typed as said (another mode, or a word lost);
  and of those that begin with a name used as an ordinary word, said straight on
  ("Chat logs show...", group "ordinary", held out), how many.
Each utterance is routed with the pauses asr finds after its first words (vad's
voicing and Whisper's word timings), as the pipeline routes it.
The same numbers for the matcher that came before (a list of mishearings, rebuilt
here for the comparison only), and a sweep of the sound matcher's threshold over the
`tune` split (thresholds are chosen there, never on `held`).
"""

import json
import time
from pathlib import Path

import numpy as np

from bench import modeset, raw
from bench.report import saved
from bus.text import plain
from stages.asr import stage as asr_stage
from stages.router import modewords
from stages.router.meaning import decide

CLIPS = modeset.OUT
SPLITS = ("tune", "held")
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
PAUSE_SWEEP = (0, 32, 64, 96, 128, 160, 192, 256)  # prefix_pause_ms, chosen on `tune`
# The list matcher before sound matching: bus/defaults.toml's [stages.router.mode_words]
# at bb2cd96. A listed word counted only with a pause after it; the name itself always.
LISTED = {
    "dictate": ["dictate", "dictation"],
    "clarify": ["clarify", "clarified", "clarity"],
    "chat": ["chat", "yet", "chad", "jet", "chats", "chet"],
    "converse": ["converse", "congress", "conversed", "converts"],
}


def listed_prefix(text: str, _pauses: list[int] = ()) -> tuple[str, str]:
    """(mode, rest) as the list matcher found it, else ("", text): it knew no pauses."""
    prefix = modewords.PREFIX.match(text)
    if not prefix or not prefix.group(3).strip():
        return "", text
    word, pause, rest = prefix.groups()
    word = word.lower()
    mode = next((m for m in modewords.MODES if word == m or (pause and word in LISTED[m])), "")
    return (mode, rest.strip()) if mode else ("", text)


class Recogniser:
    """The vad stage's cutting and the asr stage's recognition and guards, in process."""

    def __init__(self, config: dict):
        self.vad = config["stages"]["vad"]
        self.settings = config["stages"]["asr"]
        self.whisper = raw.Whisper(self.settings)
        self.guards = asr_stage.Guards.of(self.settings)

    def utterances(self, samples: np.ndarray) -> list[tuple[str, list[int]]]:
        """(text, pauses_ms) asr would send the router for each utterance of `samples` (int16)."""
        heard = []
        for utterance in raw.utterances(samples, self.vad):
            audio = utterance.audio.astype(np.float32) / 32768.0
            segments = asr_stage.Asr._transcribe(self.whisper, audio, timed=True)
            text, dropped = asr_stage.judge(segments, self.guards, utterance.voiced_ms)
            words = asr_stage.kept_words(segments, self.guards)
            heard.append((text, [] if dropped else asr_stage.pauses_after(words, utterance.voicing)))
        return heard


def transcribe(config: dict, directory: Path, say, only: set[str] | None = None) -> list[dict]:
    """The manifest's clips (those named in `only`, if given) with what asr made of them."""
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    recogniser = Recogniser(config)
    rows = []
    for entry in manifest["clips"]:
        if only is not None and entry["file"] not in only:
            continue
        heard = recogniser.utterances(modeset.clip(directory, entry))
        rows.append({**entry, "heard": [text for text, _ in heard], "pauses": [pauses for _, pauses in heard]})
        say(f"modes: {entry['file']}: {' | '.join(f'{text} {pauses}' for text, pauses in heard)}")
    return rows


def routed(row: dict, route, joined: bool = False) -> bool:
    """Whether the clip was handled as it should be: `route(text, pauses) -> (mode, rest)`,
    the rest empty for a name said on its own (which names the next utterance's mode).
    As the pipeline routes it, a clip vad cut in two needs its first utterance to be
    such a name; `joined` judges the matcher on every utterance's words as one (with
    the first utterance's pauses)."""
    said = [(text, pauses) for text, pauses in zip(row["heard"], row.get("pauses", [[]] * len(row["heard"]))) if text]
    if not said:
        return False
    heard, pauses = [text for text, _ in said], said[0][1]
    if joined:
        heard = [" ".join(heard)]
    mode, rest = route(heard[0], pauses)
    if row["kind"] == "lookalike":
        return mode in ("", "dictate") and rest.strip() == heard[0].strip()
    if mode and not rest.strip():
        return len(heard) == 2 and mode == row["mode"]
    return len(heard) == 1 and mode == row["mode"] and rest.strip() != heard[0].strip()


def by_router(aliases: dict, stop_words: set, min_pause_ms: int = modewords.MIN_PAUSE_MS):
    def route(text: str, pauses: list[int]) -> tuple[str, str]:
        decision = decide(text, "dictate", aliases, stop_words, pauses_ms=pauses, min_pause_ms=min_pause_ms)
        if decision.next:
            return decision.next, ""
        return ("" if decision.text == text.strip() else decision.mode), decision.text

    return route


def by_sound(max_distance: float):
    def route(text: str, pauses: list[int]) -> tuple[str, str]:
        alone = modewords.named_alone(text, {}, max_distance)
        return (alone, "") if alone else modewords.mode_prefix(text, {}, max_distance, pauses)

    return route


def score(rows: list[dict], route) -> dict:
    """Per split: routing accuracy of prefixed clips, false-switch rate of look-alikes."""
    scores = {}
    for split in SPLITS:
        prefixed = [row for row in rows if row["split"] == split and row["kind"] == "prefixed"]
        lookalikes = [row for row in rows if row["split"] == split and row["kind"] == "lookalike"]
        ordinary = [row for row in lookalikes if row.get("group") == "ordinary"]
        right = sum(routed(row, route) for row in prefixed)
        right_joined = sum(routed(row, route, joined=True) for row in prefixed)
        switched = sum(not routed(row, route) for row in lookalikes)
        scores[split] = {
            "prefixed": len(prefixed),
            "routed": right,
            "accuracy": rate(right, len(prefixed)),
            "cut_by_vad": sum(len(row["heard"]) > 1 for row in prefixed),
            "routed_joined": right_joined,
            "accuracy_joined": rate(right_joined, len(prefixed)),
            "lookalikes": len(lookalikes),
            "switched": switched,
            "false_switch_rate": rate(switched, len(lookalikes)),
            "ordinary": len(ordinary),
            "ordinary_switched": sum(not routed(row, route) for row in ordinary),
            "missed_joined": [row["heard"] for row in prefixed if not routed(row, route, joined=True)],
            "false_switches": [row["heard"] for row in lookalikes if not routed(row, route)],
        }
    return scores


def rate(count: int, total: int) -> float:
    return round(count / max(total, 1), 3)


def evaluate(rows: list[dict], config: dict) -> dict:
    router = config["stages"]["router"]
    stop_words = {plain(word) for word in router["stop_words"]}
    pause = int(router["prefix_pause_ms"])
    return {
        "sound": score(rows, by_router(router["mode_words"], stop_words, pause)),
        "list": score(rows, listed_prefix),
        "pause_sweep_on_tune": {
            str(ms): {
                k: v
                for k, v in score(rows, by_router(router["mode_words"], stop_words, ms))["tune"].items()
                if k in ("routed", "prefixed", "switched", "lookalikes")
            }
            for ms in PAUSE_SWEEP
        },
        "sweep_on_tune": {
            str(t): {
                k: v
                for k, v in score(rows, by_sound(t))["tune"].items()
                if k in ("accuracy", "accuracy_joined", "false_switch_rate")
            }
            for t in SWEEP
        },
    }


def measure(config: dict, out_dir: Path, say, directory: Path = CLIPS) -> dict:
    started = time.perf_counter()
    rows = transcribe(config, directory, say)
    results = {
        "clips": len(rows),
        "max_distance": modewords.MAX_DISTANCE,
        **evaluate(rows, config),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    return saved(results, out_dir, "modes")


def markdown(results: dict) -> str:
    from bench.report import table

    lines = [
        f"# Mode prefixes ({results['clips']} clips, sound threshold {results['max_distance']})",
        "",
        "Routed: as the pipeline routes the clip (vad may cut it after the name: the name alone then names the next "
        "utterance's mode). Joined: the matcher alone, on the clip's utterances joined.",
        "",
    ]
    lines += table(
        [
            "matcher",
            "split",
            "prefixed routed",
            "accuracy",
            "cut by vad",
            "routed joined",
            "accuracy joined",
            "look-alikes switched",
            "false-switch rate",
            "name as a word switched",
        ],
        [
            [
                matcher,
                split,
                f"{s['routed']} / {s['prefixed']}",
                s["accuracy"],
                s["cut_by_vad"],
                f"{s['routed_joined']} / {s['prefixed']}",
                s["accuracy_joined"],
                f"{s['switched']} / {s['lookalikes']}",
                s["false_switch_rate"],
                f"{s['ordinary_switched']} / {s['ordinary']}",
            ]
            for matcher in ("sound", "list")
            for split, s in results[matcher].items()
        ],
    )
    lines += ["", "Pause threshold sweep on `tune` (prefix_pause_ms, the router as configured otherwise):", ""]
    lines += table(
        ["prefix_pause_ms", "prefixed routed", "look-alikes switched"],
        [
            [ms, f"{s['routed']} / {s['prefixed']}", f"{s['switched']} / {s['lookalikes']}"]
            for ms, s in results["pause_sweep_on_tune"].items()
        ],
    )
    lines += ["", "Threshold sweep on `tune` (sound matcher alone):", ""]
    lines += table(
        ["max distance", "accuracy", "accuracy joined", "false-switch rate"],
        [[t, s["accuracy"], s["accuracy_joined"], s["false_switch_rate"]] for t, s in results["sweep_on_tune"].items()],
    )
    for matcher in ("sound", "list"):
        for split, s in results[matcher].items():
            lines += [
                "",
                f"{matcher}, {split}: missed (joined) {s['missed_joined']}",
                f"{matcher}, {split}: switched {s['false_switches']}",
            ]
    if "file" in results:
        lines += ["", f"Written to {results['file']}"]
    return "\n".join(lines)
