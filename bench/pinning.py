"""Pinning experiment: the same model-mode workloads with and without a CPU layout.

The layout is laid over the config as `stages.NAME.cpus` (which also sets each
engine's thread count to the cores given): by default the light stages (capture,
vad, router, keys) share the first core, asr and the model stages the others. Each
arm replays, at real time through the whole pipeline and several times over
(medians are reported; the arms alternate):

* `chat_then_dictation`: chat_capital.wav, a short gap, then dictate_report.wav, so
  the user dictates while the chat answer is in the works. Measured: audio frames
  lost (the stages' sequence-gap counters, vad's audio gaps) and the dictated
  utterance's end-of-speech latencies. In voxkey new speech cancels an answer in
  progress (barge-in), so the model's work overlapping the dictation is cut short by
  design; the report says what happened to the answer.
* `converse_while_streaming`: converse_math.wav followed by seconds of silence, so
  the Thinking model prefills and decodes while capture and vad keep streaming.
  Measured: frames lost, the bus hop of the audio frames captured while the model
  was busy, and the model's time to first token and tokens/s under each layout.
"""

import copy
from pathlib import Path

import numpy as np

from bench import pipeline
from bench.stats import interval_overlap_ms, ms_between, percentile, summarize
from bus.wiring import STAGES
from stages.capture import audio

LIGHT_STAGES = ("capture", "vad", "router", "keys")
HEAVY_STAGES = ("asr", "instruct", "thinking")
DECODING_TAIL_S = 8.0  # long enough for the embedded Thinking model to answer on one core


def default_layout(cores: list[int]) -> dict[str, list[int]]:
    """Light stages on the first core, the engines on the rest (all of them on the
    first core when there is only one)."""
    heavy = cores[1:] or cores[:1]
    return {**{stage: cores[:1] for stage in LIGHT_STAGES}, **{stage: heavy for stage in HEAVY_STAGES}}


def parse_layout(items: list[str]) -> dict[str, list[int]]:
    """["capture,vad=0", "asr=1,2"] -> {"capture": [0], "vad": [0], "asr": [1, 2]}"""
    layout = {}
    for item in items:
        names, sep, cpus = item.partition("=")
        if not sep:
            raise ValueError(f"layout {item!r} is not STAGE[,STAGE]=CPU[,CPU]")
        for name in (name.strip() for name in names.split(",")):
            if name not in STAGES:
                raise ValueError(f"layout {item!r}: no stage {name!r} (stages: {', '.join(STAGES)})")
            layout[name] = [int(cpu) for cpu in cpus.split(",")]
    return layout


def pinned(config: dict, layout: dict[str, list[int]]) -> dict:
    config = copy.deepcopy(config)
    for stage, cpus in layout.items():
        config["stages"][stage]["cpus"] = list(cpus)
    return config


def build_workloads(audio_dir: Path, work_dir: Path, gap_s: float, tail_s: float) -> dict[str, tuple[Path, str]]:
    """name -> (recording, what it is)."""
    chat, dictation, converse = (
        audio.read_all(audio_dir / name) for name in ("chat_capital.wav", "dictate_report.wav", "converse_math.wav")
    )
    silence = pipeline.silence
    return {
        "chat_then_dictation": (
            pipeline.write_wav(
                work_dir / "chat_then_dictation.wav", np.concatenate([chat, silence(gap_s), dictation, silence(tail_s)])
            ),
            f"chat_capital.wav + {gap_s} s gap + dictate_report.wav + {tail_s} s silence",
        ),
        "converse_while_streaming": (
            pipeline.write_wav(
                work_dir / "converse_while_streaming.wav", np.concatenate([converse, silence(DECODING_TAIL_S)])
            ),
            f"converse_math.wav + {DECODING_TAIL_S} s silence",
        ),
    }


def model_busy(row: dict) -> tuple[int, int]:
    """From the router's decision to the end of the model's answer, in monotonic ns."""
    return row["router_ns"], row["router_ns"] + int((row.get("llm_total_ms") or 0) * 1e6)


def workload_summary(run: dict) -> dict:
    """Losses and audio hops of a run; what the model did and how audio fared while it
    was busy; and the end-of-speech latencies of an utterance dictated after it."""
    audio_hops = run["wire"].get("capture/audio", [])
    overall = summarize([ms for _, ms in audio_hops], digits=2)
    found = {
        "frames_lost": run["losses"]["lost"],
        "audio_gaps": run["losses"]["audio_gaps"],
        "audio_hop_p50_ms": overall["median"],
        "audio_hop_p99_ms": overall["p99"],
    }
    rows = sorted(run["rows"], key=lambda row: row.get("speech_end_ns") or 0)
    model = next((row for row in rows if row.get("llm_stage") and row.get("router_ns")), None)
    if model is None:
        return {**found, "model_outcome": None}
    busy = model_busy(model)
    during = summarize([ms for sent, ms in audio_hops if busy[0] <= sent <= busy[1]], digits=2)
    found.update(
        model_outcome=model.get("outcome"),
        model_ttft_ms=model.get("ttft_ms"),
        model_tokens_per_s=model.get("tokens_per_s"),
        model_busy_ms=model.get("llm_total_ms"),
        audio_frames_while_model_busy=during["n"],
        audio_hop_while_model_busy_p50_ms=during["median"],
        audio_hop_while_model_busy_p99_ms=during["p99"],
    )
    later = [row for row in rows if row.get("speech_end_ns", 0) > model.get("speech_end_ns", 0)]
    if not later:
        return found
    dictation = later[0]
    spoken = run["speech_marks"].get(dictation["utt"], {})
    heard = (
        spoken.get("speech_start", dictation["speech_end_ns"]),
        dictation.get("vad_ns", dictation["speech_end_ns"]),
    )
    return {
        **found,
        "model_busy_during_dictation_ms": interval_overlap_ms(busy, heard),
        "dictation_speech_end_to_vad_ms": ms_between(dictation, "speech_end_ns", "vad_ns"),
        "dictation_speech_end_to_asr_ms": ms_between(dictation, "speech_end_ns", "asr_final_ns"),
        "dictation_speech_end_to_first_key_ms": ms_between(dictation, "speech_end_ns", "first_key_ns"),
    }


def finding(summary: dict) -> str:
    """What happened to the chat answer, in words: it decides what was measured."""
    outcome = summary.get("model_outcome")
    if outcome == "cancelled":
        return (
            f"the dictation's onset cancelled the chat answer (barge-in) after {summary.get('model_busy_ms')} ms of "
            "model work, so the dictation was handled while the model was idle or stopping."
        )
    if outcome is None:
        return "no model request was made."
    return (
        f"the chat answer was {outcome}; the model was busy for {summary.get('model_busy_during_dictation_ms')} ms "
        "while the dictation was spoken and endpointed."
    )


def difference(unpinned: dict, pinned_arm: dict) -> dict:
    """pinned minus unpinned, for every number both arms have."""
    return {
        key: round(pinned_arm[key] - value, 2)
        for key, value in unpinned.items()
        if isinstance(value, (int, float)) and isinstance(pinned_arm.get(key), (int, float))
    }


def flatten(by_workload: dict) -> dict:
    return {f"{name}: {key}": value for name, measures in by_workload.items() for key, value in measures.items()}


def median_of(summaries: list[dict]) -> dict:
    """Across repeats: the median of each number; other values (an outcome) as the
    distinct values seen, joined."""
    merged = {}
    for key in dict.fromkeys(key for summary in summaries for key in summary):
        values = [summary.get(key) for summary in summaries]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            median = round(percentile(numbers, 50), 2)
            merged[key] = int(median) if all(isinstance(v, int) for v in numbers) and median == int(median) else median
        else:
            merged[key] = "/".join(sorted({str(v) for v in values if v is not None})) or None
    return merged


def run(
    config: dict,
    audio_dir: Path,
    work_dir: Path,
    layout: dict,
    gap_s: float,
    tail_s: float,
    repeats: int = 3,
    say=print,
) -> dict:
    workloads = build_workloads(audio_dir, work_dir, gap_s, tail_s)
    arm_configs = {"unpinned": config, "pinned": pinned(config, layout)}
    runs: dict[str, dict[str, list]] = {arm: {name: [] for name in workloads} for arm in arm_configs}
    # Arms alternate within each repeat, so a drift in the machine's state hits both alike.
    for repeat in range(repeats):
        for arm, arm_config in arm_configs.items():
            for name, (recording, _) in workloads.items():
                say(f"bench: pinning experiment {repeat + 1}/{repeats}, {arm}, {name}")
                runs[arm][name].append(pipeline.run(arm_config, recording))
    summaries = {
        arm: {
            name: median_of([workload_summary(result) for result in results]) for name, results in by_workload.items()
        }
        for arm, by_workload in runs.items()
    }
    flat = {arm: flatten(by_workload) for arm, by_workload in summaries.items()}
    return {
        "workloads": {name: text for name, (_, text) in workloads.items()},
        "layout": layout,
        "repeats": repeats,
        **flat,
        "pinned_minus_unpinned": difference(flat["unpinned"], flat["pinned"]),
        "finding": {arm: finding(by_workload["chat_then_dictation"]) for arm, by_workload in summaries.items()},
        "details": {
            arm: {name: [run_details(result) for result in results] for name, results in by_workload.items()}
            for arm, by_workload in runs.items()
        },
    }


def run_details(result: dict) -> dict:
    return {
        "rows": result["rows"],
        "cores": {stage: s["cores"] for stage, s in result["stages"].items()},
        "engine_threads": result["threads"],
        "cpu_after_ready_s": {stage: s["cpu_after_ready_s"] for stage, s in result["stages"].items()},
    }
