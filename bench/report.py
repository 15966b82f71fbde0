"""Turning measurements into results: the JSON document (assembled from the pipeline
runs, the raw baseline, the memory budget and the optional experiments), and its
Markdown summary, which is also what the bench prints."""

import json
import math

from bench import stats
from bench.stats import MARK_LABELS, compare, mark_hops, summarize, waterfall, waterfall_summary
from voxkey import heat

SCHEMA = 1
MB = 1e6


def utterance_rows(runs: list[dict]) -> list[dict]:
    return [{**row, "waterfall_ms": waterfall(row), **stats.totals(row)} for run in runs for row in run["rows"]]


def llm_requests(rows: list[dict]) -> list[dict]:
    keys = (
        "utt",
        "mode",
        "llm_stage",
        "outcome",
        "prompt_tokens",
        "ttft_ms",
        "first_typed_ms",
        "tokens_per_s",
        "llm_total_ms",
    )
    return [
        {
            **{key: row.get(key) for key in keys},
            "router_to_first_token_ms": stats.ms_between(row, "router_ns", "llm_first_token_ns"),
        }
        for row in rows
        if row.get("llm_stage")
    ]


def stage_totals(runs: list[dict]) -> dict:
    """Per stage over all recordings: CPU summed, peak RSS the highest, cores as last seen."""
    merged: dict[str, dict] = {}
    for run in runs:
        for name, stage in run["stages"].items():
            total = merged.setdefault(name, {"cpu_s": 0.0, "cpu_after_ready_s": 0.0, "peak_rss_mb": 0.0, "restarts": 0})
            total["cpu_s"] = round(total["cpu_s"] + stage["cpu_s"], 2)
            total["cpu_after_ready_s"] = round(total["cpu_after_ready_s"] + stage["cpu_after_ready_s"], 2)
            total["peak_rss_mb"] = max(total["peak_rss_mb"], round(stage["peak_rss"] / MB, 1))
            total["restarts"] += stage["restarts"]
            total.update(
                rss_mb=round(stage["rss"] / MB, 1),
                rss_anon_mb=round(stage["rss_anon"] / MB, 1),
                rss_file_mb=round(stage["rss_file"] / MB, 1),
                pss_mb=round(stage["pss"] / MB, 1),
                threads=stage["threads"],
                engine_threads=run["threads"].get(name),
                cores=stage["cores"],
            )
    return merged


def bus_section(runs: list[dict], rows: list[dict]) -> dict:
    wire: dict[str, list] = {}
    for run in runs:
        for hop, values in run["wire"].items():
            wire.setdefault(hop, []).extend(ms for _, ms in values)
    rejected: dict[str, int] = {}
    for run in runs:
        for key, value in run["losses"]["rejected"].items():
            rejected[key] = rejected.get(key, 0) + value
    return {
        "mark_hops_ms": mark_hops(rows),
        "wire_hops_ms": {hop: summarize(values, digits=2) for hop, values in sorted(wire.items())},
        "frames_lost": sum(run["losses"]["lost"] for run in runs),
        "audio_gaps": sum(run["losses"]["audio_gaps"] for run in runs),
        "rejected": rejected,
        "tap_lost": sum(run["tap_lost"] for run in runs),
    }


def ratios(rows: list[dict], raw_asr: list[dict], raw_llm: list[dict]) -> dict:
    """Pipeline / raw, matched by utterance id."""
    by_utt = {row["utt"]: row for row in rows}
    asr_pairs = [(by_utt[r["utt"]].get("asr_ms"), r["transcribe_ms"]) for r in raw_asr if r["utt"] in by_utt]
    llm_pairs = [(by_utt[r["utt"]], r) for r in raw_llm if r["utt"] in by_utt]
    return {
        "asr_latency": compare(asr_pairs),
        "ttft": compare([(p.get("ttft_ms"), r["ttft_ms"]) for p, r in llm_pairs]),
        "ttft_vs_cold": compare([(p.get("ttft_ms"), r.get("cold_ttft_ms")) for p, r in llm_pairs]),
        "router_to_first_token_vs_raw_ttft": compare(
            [(stats.ms_between(p, "router_ns", "llm_first_token_ns"), r["ttft_ms"]) for p, r in llm_pairs]
        ),
        "tokens_per_s": compare([(p.get("tokens_per_s"), r["tokens_per_s"]) for p, r in llm_pairs]),
    }


def assemble(
    host: dict,
    settings: dict,
    runs: list[dict],
    raw: dict | None,
    memory: dict | None,
    pinning: dict | None,
    bus_bench: dict | None,
) -> dict:
    rows = utterance_rows(runs)
    requests = llm_requests(rows)
    summary = waterfall_summary(rows)
    dominant = stats.dominant_span(summary)
    return {
        "schema": SCHEMA,
        "host": {**host, "heat": host.get("heat") or heat.summary(heat.reading())},
        "settings": settings,
        "recordings": [{key: run[key] for key in ("recording", "wall_s", "text")} for run in runs],
        "utterances": rows,
        "waterfall": summary,
        "dominant": None
        if dominant is None
        else {"span": dominant[0], "median_ms": dominant[1], "of_total_ms": dominant[2]},
        "llm": {
            "requests": requests,
            "ttft_ms": summarize([r["ttft_ms"] for r in requests]),
            "tokens_per_s": summarize([r["tokens_per_s"] for r in requests]),
            "prompt_tokens": summarize([r["prompt_tokens"] for r in requests]),
        },
        "stages": stage_totals(runs),
        "stages_per_recording": {run["recording"]: run["stages"] for run in runs},
        "bus": bus_section(runs, rows),
        "raw": raw,
        "ratios": ratios(rows, raw["asr"], raw["llm"]) if raw else None,
        "memory": memory,
        "pinning": pinning,
        "bus_microbench": bus_bench,
    }


def clean(value):
    """JSON without NaN or infinity (which json.dumps would write as invalid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def to_json(results: dict) -> str:
    return json.dumps(clean(results), indent=1, allow_nan=False, ensure_ascii=False)


def saved(results: dict, out_dir, kind: str) -> dict:
    """`results` written to out_dir/<timestamp>-<kind>.json, with "file" saying where."""
    import time
    from pathlib import Path

    path = Path(out_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(results))
    return {**results, "file": str(path)}


# --- Markdown -----------------------------------------------------------------


def table(header: list[str], rows: list[list]) -> list[str]:
    def cell(value):
        return "–" if value is None else str(value)

    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
        "",
    ]


def section(title: str, header: list[str], rows: list[list], notes=(), level: int = 2) -> list[str]:
    """A heading, a table, and notes after it (one paragraph each)."""
    lines = ["#" * level + " " + title, "", *table(header, rows)]
    for note in notes:
        lines += [note, ""]
    return lines


def span_name(key: str) -> str:
    if key in MARK_LABELS:
        return f"→ {MARK_LABELS[key]}"
    return key.removesuffix("_ms").replace("_", " ")


def waterfall_lines(results: dict) -> list[str]:
    dominant = results["dominant"]
    notes = []
    if dominant:
        share = dominant["median_ms"] / dominant["of_total_ms"] if dominant["of_total_ms"] else 0
        notes.append(
            f"Dominant span of end of speech → first keystroke: **{span_name(dominant['span'])}**, median "
            f"{dominant['median_ms']} ms of {dominant['of_total_ms']} ms ({share:.0%})."
        )
    columns = [mark for mark in MARK_LABELS if mark != "speech_end_ns"]
    return section(
        "Waterfall (ms, over utterances)",
        ["span (from the previous mark)", "n", "median", "p90"],
        [[span_name(key), s["n"], s["median"], s["p90"]] for key, s in results["waterfall"].items()],
        notes,
    ) + section(
        "Per utterance (ms)",
        ["utterance", "mode", *[span_name(m) for m in columns], "speech end → first key"],
        [
            [
                row["utt"],
                row.get("mode", "dictate"),
                *[row["waterfall_ms"].get(m) for m in columns],
                row["speech_end_to_first_key_ms"],
            ]
            for row in results["utterances"]
        ],
        level=3,
    )


def llm_lines(results: dict) -> list[str]:
    llm = results["llm"]
    raw = {r["utt"]: r for r in (results["raw"] or {}).get("llm", [])}
    return section(
        "LLM requests (raw: the same request to llama-cpp-python alone, median of repeats)",
        [
            "utterance",
            "mode",
            "outcome",
            "prompt tokens",
            "TTFT ms",
            "router → first token ms",
            "tokens/s",
            "total ms",
            "raw TTFT ms (warm)",
            "raw TTFT ms (cold)",
            "raw tokens/s",
        ],
        [
            [
                r["utt"],
                r["mode"],
                r["outcome"],
                r["prompt_tokens"],
                r["ttft_ms"],
                r["router_to_first_token_ms"],
                r["tokens_per_s"],
                r["llm_total_ms"],
                raw.get(r["utt"], {}).get("ttft_ms"),
                raw.get(r["utt"], {}).get("cold_ttft_ms"),
                raw.get(r["utt"], {}).get("tokens_per_s"),
            ]
            for r in llm["requests"]
        ],
        [
            f"TTFT median {llm['ttft_ms']['median']} ms (p90 {llm['ttft_ms']['p90']}); tokens/s median "
            f"{llm['tokens_per_s']['median']} (p90 {llm['tokens_per_s']['p90']}); prompt tokens median "
            f"{llm['prompt_tokens']['median']}. Raw warm: the stage's own system prompt evaluated first, as the stage "
            "does before it reports ready (like for like); raw cold: nothing cached."
        ],
    )


def stage_lines(results: dict) -> list[str]:
    return section(
        "Stages (CPU summed over recordings; memory: highest peak, last reading)",
        [
            "stage",
            "CPU s",
            "CPU s after ready",
            "peak RSS MB",
            "RSS MB",
            "anon MB",
            "file MB",
            "PSS MB",
            "engine threads",
            "cores",
        ],
        [
            [
                name,
                s["cpu_s"],
                s["cpu_after_ready_s"],
                s["peak_rss_mb"],
                s["rss_mb"],
                s["rss_anon_mb"],
                s["rss_file_mb"],
                s["pss_mb"],
                s["engine_threads"],
                ",".join(map(str, s["cores"])),
            ]
            for name, s in results["stages"].items()
        ],
    )


def bus_lines(results: dict) -> list[str]:
    bus = results["bus"]

    def hop_rows(hops: dict) -> list[list]:
        return [[hop, s["n"], s["median"], s["p99"]] for hop, s in hops.items()]

    return section(
        "Bus (direct wiring, no broker): mark-to-mark hops, ms (bus plus the receiver's work before it stamps)",
        ["hop", "n", "p50", "p99"],
        hop_rows(bus["mark_hops_ms"]),
    ) + section(
        "Bus: wire hops, ms (the sender's mark → arrival at a tap subscriber)",
        ["sender/topic", "n", "p50", "p99"],
        hop_rows(bus["wire_hops_ms"]),
        [
            f"Frames lost (sum of the stages' `lost` counters once all was typed): {bus['frames_lost']}; audio "
            f"gaps at vad: {bus['audio_gaps']}; rejected: {bus['rejected'] or 0}; lost at the tap: {bus['tap_lost']}."
        ],
    )


RATIO_NAMES = {
    "asr_latency": "ASR latency (pipeline vad → asr span / raw transcribe), ms",
    "ttft": "TTFT (stage's own report / raw warm), ms",
    "ttft_vs_cold": "TTFT (stage's own report / raw cold), ms",
    "router_to_first_token_vs_raw_ttft": "router → first token / raw warm TTFT, ms",
    "tokens_per_s": "tokens/s",
}


def ratio_lines(results: dict) -> list[str]:
    if not results["ratios"]:
        return []
    return section(
        "Pipeline overhead (pipeline / raw)",
        ["measure", "n", "pipeline median", "raw median", "ratio of medians", "median ratio"],
        [
            [RATIO_NAMES[key], c["n"], c["pipeline_median"], c["raw_median"], c["ratio_of_medians"], c["median_ratio"]]
            for key, c in results["ratios"].items()
        ],
        ["Raw converse runs the Thinking model's first turn only; the pipeline's tokens/s also spans tool calls."],
    )


def memory_lines(results: dict) -> list[str]:
    memory = results["memory"]
    if not memory:
        return []
    return section(
        "Memory budget (MB = 10^6 bytes)",
        ["process", "peak RSS", "PSS", "model files", "not weights (est.)", "KV cache", "production projection"],
        [
            [
                name,
                s["peak_rss_mb"],
                s["pss_mb"],
                s["model_files_mb"],
                s["not_weights_mb"],
                s["kv_cache_mb"],
                s["production_mb"],
            ]
            for name, s in memory["stages"].items()
        ],
        [
            f"Total peak RSS {memory['total_peak_rss_mb']} MB (PSS {memory['total_pss_mb']} MB), of which model files "
            f"{memory['total_model_files_mb']} MB and not weights ≈ {memory['total_not_weights_mb']} MB.",
            f"Production set projection: {memory['production_total_mb']} MB of the {memory['budget_mb']} MB (4 GiB) "
            f"budget ({memory['production_share_of_budget']:.0%}; headroom {memory['production_headroom_mb']} MB "
            "before the OS).",
            "Method:\n\n" + "\n".join(f"* {step}" for step in memory["method"]),
        ],
    )


def pinning_lines(results: dict) -> list[str]:
    pinning = results["pinning"]
    if not pinning:
        return []
    workloads = "; ".join(f"{name} = {text}" for name, text in pinning["workloads"].items())
    return section(
        f"Pinning experiment (layout {pinning['layout']}; medians of {pinning['repeats']} runs per arm)",
        ["workload: measure", "unpinned", "pinned", "pinned − unpinned"],
        [
            [key, value, pinning["pinned"].get(key), pinning["pinned_minus_unpinned"].get(key)]
            for key, value in pinning["unpinned"].items()
        ],
        [f"Workloads: {workloads}.", "\n".join(f"* {arm}: {text}" for arm, text in pinning["finding"].items())],
    )


def microbench_lines(results: dict) -> list[str]:
    bench = results["bus_microbench"]
    if not bench:
        return []
    return section(
        f"Bus microbenchmark ({bench['topology']})",
        ["frame", "bytes on the wire", "frames/s", "hop p50 µs", "hop p99 µs", "lost"],
        [
            [kind, bench["frame_bytes"][kind], k["frames_per_s"], k["hop_p50_us"], k["hop_p99_us"], k["lost"]]
            for kind, k in bench["kinds"].items()
        ],
    )


def host_lines(results: dict) -> list[str]:
    host = results["host"]
    lines = [f"{host['cpus']} cores ({host['machine']}), Python {host['python']}."]
    lines += [f"Heat as the bench ended: {host['heat']['line']}."] if "heat" in host else []
    load = host.get("load")
    if load:
        lines.append(
            f"Other processes used {load['other_processes_cpu_s']} CPU s during the bench "
            f"({load['other_processes_share']:.0%} of the machine); the hypervisor stole {load['stolen_cpu_s']} s "
            f"({load['stolen_share']:.0%})."
            + (
                " **The machine was not quiet: timings are inflated.**"
                if load["other_processes_share"] + load["stolen_share"] > 0.05
                else ""
            )
        )
    return lines


def file_lines(results: dict) -> list[str]:
    return ["## Files", "", *(f"* {name}: {path}" for name, path in results.get("files", {}).items()), ""]


def markdown(results: dict) -> str:
    host, settings = results["host"], results["settings"]
    lines = [
        f"# voxkey bench {host['timestamp']}",
        "",
        *host_lines(results),
        f"Recordings replayed at real time, each followed by {settings['tail_silence_s']} s of silence: "
        f"{', '.join(r['recording'] for r in results['recordings'])}.",
        f"Settings: {settings['summary']}.",
        "",
    ]
    for part in (
        waterfall_lines,
        llm_lines,
        stage_lines,
        bus_lines,
        ratio_lines,
        memory_lines,
        pinning_lines,
        microbench_lines,
    ):
        lines += part(results)
    return "\n".join(lines + file_lines(results))
