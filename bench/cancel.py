"""`voxkey bench --cancel`: how soon a spoken "cancel" stops the Thinking model.

A stream of "Converse. What is seventeen times twenty three?" then, `GAP_S` later
(while the model still thinks), "Cancel." is replayed at real time through every
process, `REPEATS` times, quiet and beside one busy process (`while True: pass`, what
one browser tab can be). The Thinking model is scripted (stages/llm/scripted_engine.py)
to think without end at LFM2.5's pace on a Pi 5 class CPU, so only the cancel can end
the request: no embedded model thinks, and the production one is the user's download.
Per request it reports, from the trace's marks:
* end of the "cancel" speech -> the cancelled request's final piece at keys (what the
  user waits for: vad's end-of-speech wait, recognition, the router, the model's next
  token, keys);
* its recognition -> that final piece (the part voxkey's cancel path adds);
* whether anything of the request was typed (it must not be: thinking is never typed).
"""

import json
import time
from pathlib import Path

import numpy as np

from bench import hogs, workload
from bench.endpointing import replay_arm
from bench.report import section
from bench.stats import percentile
from stages.llm.scripted_engine import TOKEN

GAP_S = 2.5  # after the question: thinking is under way when "cancel" is said
AFTER_S = 4.0  # after "cancel": room for the next question
REPEATS = 5
PACE_MS = 25  # LFM2.5-1.2B-Thinking decodes at ~40 tokens/s on a Pi 5 class CPU
THINKS_ON = {
    "when": ["17 times 23"],
    "pieces": TOKEN.findall("<think>\nThe user asks for 17 times 23. 17 times 20 is 340, plus 51."),
    "repeat": [*TOKEN.findall(" Let me check that once more, round"), " {n}", "."],
}


def script(work: Path) -> str:
    path = work / "thinks-on.json"
    path.write_text(
        json.dumps({"metadata": {"general.architecture": "lfm2"}, "pace_ms": PACE_MS, "turns": [THINKS_ON]})
    )
    return f"scripted:{path}"


def stopped(rows: list[dict]) -> list[dict]:
    """Each converse request with the "cancel" said after it: how soon it stopped."""
    ordered = sorted(rows, key=lambda row: workload.start_ms(row["utt"]) or 0)
    found = []
    for asked, cancel in zip(ordered, ordered[1:]):
        if asked.get("mode") != "converse" or cancel.get("mode") == "converse":
            continue
        end, heard, done = cancel.get("speech_end_ns"), cancel.get("asr_final_ns"), asked.get("last_key_ns")
        found.append(
            {
                "utt": asked["utt"],
                "outcome": asked.get("outcome", ""),
                "typed": asked.get("text", ""),
                "cancel_typed": cancel.get("text", ""),
                "speech_end_to_stopped_ms": round((done - end) / 1e6, 1) if end and done else None,
                "recognised_to_stopped_ms": round((done - heard) / 1e6, 1) if heard and done else None,
                "tokens": asked.get("generated_tokens"),
            }
        )
    return found


def arm(config: dict, stream: Path, busy: bool) -> list[dict]:
    with hogs.hogs(1 if busy else 0):
        return stopped(replay_arm(config, stream)["rows"])


def median(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(percentile(values, 50), 1) if values else None


def measure(config: dict, audio_dir: Path, out_dir: Path, say) -> dict:
    work = out_dir / f"cancel-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    config["stages"]["thinking"]["model"] = script(work)
    question, cancel = audio_dir / "converse_math.wav", audio_dir / "cmd_cancel.wav"
    asked, said = workload.build_cycle([question], GAP_S), workload.build_cycle([cancel], AFTER_S)
    cycle = workload.Cycle(np.concatenate([asked.samples, said.samples]), asked.recordings + said.recordings)
    stream = workload.write_stream(cycle, REPEATS, work / "cancel.wav", 0.0)
    results: dict = {"gap_s": GAP_S, "repeats": REPEATS, "pace_ms": PACE_MS, "arms": {}}
    for name, busy in (("quiet", False), ("beside one busy process", True)):
        say(f"cancel: {name}: replaying {cycle.seconds * REPEATS:.0f} s at real time")
        rows = arm(config, stream, busy)
        results["arms"][name] = {
            "requests": rows,
            "cancelled": sum(row["outcome"] == "cancelled" for row in rows),
            "typed_anything": sum(bool(row["typed"].strip()) for row in rows),
            "median_speech_end_to_stopped_ms": median(rows, "speech_end_to_stopped_ms"),
            "median_recognised_to_stopped_ms": median(rows, "recognised_to_stopped_ms"),
        }
    (work / "results.json").write_text(json.dumps(results, indent=1))
    (work / "summary.md").write_text(markdown(results))
    results["files"] = [str(work / "results.json"), str(work / "summary.md")]
    return results


def markdown(results: dict) -> str:
    rows = [
        [
            name,
            f"{arm['cancelled']}/{len(arm['requests'])}",
            arm["typed_anything"],
            arm["median_speech_end_to_stopped_ms"],
            arm["median_recognised_to_stopped_ms"],
        ]
        for name, arm in results["arms"].items()
    ]
    return "\n".join(
        section(
            f"Spoken cancel of a thinking request ({results['repeats']} per arm, "
            f"model pace {results['pace_ms']} ms/token)",
            ["machine", "cancelled", "typed anything", "end of speech → stopped ms", "recognised → stopped ms"],
            rows,
            notes=["Medians. Stopped: the cancelled request's final piece reached keys."],
        )
    )
