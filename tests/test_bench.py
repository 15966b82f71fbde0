"""The bench runs end to end and writes valid results. Nothing here asserts a timing:
the numbers only have to exist, be finite and be non-negative."""

import json
import math
import subprocess
import sys

import pytest
from conftest import AUDIO, REPO

from bench import memory, pinning, procs, stats
from bus import wiring

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_KEYS = {
    "schema",
    "host",
    "settings",
    "recordings",
    "utterances",
    "waterfall",
    "dominant",
    "llm",
    "stages",
    "bus",
    "raw",
    "ratios",
    "memory",
    "pinning",
    "bus_microbench",
    "files",
}


def numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    recordings = [AUDIO / "dictate_report.wav", AUDIO / "chat_capital.wav"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            *map(str, recordings),
            "--out",
            str(out),
            "--bus",
            "--bus-frames",
            "500",
            "--bus-latency-frames",
            "50",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_results_json_has_the_expected_keys_and_sane_numbers(bench_run):
    out, _ = bench_run
    [path] = out.glob("*.json")
    results = json.loads(path.read_text())
    assert EXPECTED_KEYS <= results.keys()
    assert [row["utt"] for row in results["utterances"]] == ["dictate_report@000000000ms", "chat_capital@000000000ms"]
    assert [request["mode"] for request in results["llm"]["requests"]] == ["chat"]
    assert {"capture", "vad", "asr", "router", "instruct", "thinking", "keys"} <= results["stages"].keys()
    assert results["ratios"]["asr_latency"]["n"] == 2 and results["ratios"]["ttft"]["n"] == 1
    assert results["memory"]["production_total_mb"] > 0
    assert set(results["bus_microbench"]["kinds"]) == {"audio", "token"}
    assert results["pinning"] is None
    found = list(numbers(results))
    assert found and all(math.isfinite(n) and n >= 0 for n in found)


def test_markdown_and_valid_pngs_are_written_next_to_it(bench_run):
    out, printed = bench_run
    [markdown] = out.glob("*.md")
    assert markdown.read_text().rstrip() == printed.rstrip()
    assert "Waterfall" in printed and "Memory budget" in printed and "no broker" in printed
    import matplotlib.image

    pngs = sorted(out.glob("*.png"))
    assert [p.name.rsplit("-", 1)[1] for p in pngs] == ["latency.png", "waterfall.png"]
    for png in pngs:
        assert png.read_bytes().startswith(PNG_SIGNATURE)
        height, width, _ = matplotlib.image.imread(png).shape
        assert height > 100 and width > 100


def test_percentile_interpolates_like_numpy():
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([5], 90) == 5
    assert stats.percentile([], 50) is None
    assert stats.percentile(range(101), 99) == 99


def test_waterfall_spans_run_from_each_mark_to_the_next_present():
    ms = 1_000_000
    dictated = {
        "speech_end_ns": 1 * ms,
        "vad_ns": 601 * ms,
        "asr_final_ns": 1101 * ms,
        "router_ns": 1102 * ms,
        "first_key_ns": 1104 * ms,
        "last_key_ns": 1110 * ms,
    }
    assert stats.waterfall(dictated) == {
        "vad_ns": 600,
        "asr_final_ns": 500,
        "router_ns": 1,
        "first_key_ns": 2,
        "last_key_ns": 6,
    }
    summary = stats.waterfall_summary([dictated])
    assert summary["speech_end_to_first_key_ms"]["median"] == 1103
    assert stats.dominant_span(summary) == ("vad_ns", 600, 1103)


def test_compare_gives_ratios_of_matched_pairs():
    result = stats.compare([(200, 100), (90, 30), (None, 10)])
    assert result["n"] == 2 and result["ratio_of_medians"] == round(145 / 65, 2) and result["median_ratio"] == 2.5


def test_kv_cache_and_gguf_metadata():
    assert memory.kv_cache_bytes(memory.LFM25_SHAPE, 2048) == 2 * 6 * 8 * 64 * 2 * 2048
    from stages.llm.stage import embedded_gguf

    shape = memory.gguf_shape(memory.gguf_metadata(embedded_gguf()))
    assert shape == {"attention_layers": 30, "kv_heads": 3, "head_dim": 64}


def test_pinning_layout():
    layout = pinning.default_layout([0, 1])
    assert layout["vad"] == [0] and layout["asr"] == [1] and layout["thinking"] == [1]
    assert pinning.parse_layout(["capture,vad=0", "asr=1,2"]) == {"capture": [0], "vad": [0], "asr": [1, 2]}
    with pytest.raises(ValueError):
        pinning.parse_layout(["asr"])
    merged = pinning.median_of(
        [
            {"lost": 0, "ms": 10.0, "outcome": "cancelled"},
            {"lost": 2, "ms": 30.0, "outcome": "answered"},
            {"lost": 0, "ms": 20.0},
        ]
    )
    assert merged == {"lost": 0, "ms": 20.0, "outcome": "answered/cancelled"}


def test_proc_stat_parsing_survives_odd_command_names():
    fields = ["S"] + ["0"] * 10 + ["150", "50"] + ["0"] * 6 + ["3000"] + ["0"] * 16 + ["1"]
    reading = procs.parse_stat("42 (python -m (x)) " + " ".join(fields))
    assert reading == {"cpu_s": 200 / procs.CLOCK_TICKS, "last_cpu": 1, "started_s": 3000 / procs.CLOCK_TICKS}
    machine = procs.parse_proc_stat("cpu  100 0 50 900 7 3 2 10 0 0\ncpu0 1 2 3\n")
    assert machine == {"busy_s": 155 / procs.CLOCK_TICKS, "steal_s": 10 / procs.CLOCK_TICKS}


def test_the_typing_bench_types_exactly_through_every_backend_and_writes_numbers(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--typing", "--repeats", "1", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [written] = list(tmp_path.glob("*-typing.json"))
    rows = json.loads(written.read_text())["rows"]
    cold = "wayland, new keyboard each run (cold seat)"  # measured, not promised: see bench/typing_speed.py
    assert {row["backend"] for row in rows} == {
        "xdotool (X11, xterm)",
        "clipboard (X11, xterm)",
        "wayland (held open, foot)",
        "wayland, new keyboard each run",
        cold,
        "wtype (Wayland, foot)",
        "clipboard (Wayland, foot)",
    }
    promised = [row for row in rows if row["backend"] != cold]
    assert all(row["errors"] == 0 for row in promised), [row for row in promised if row["errors"]]  # every text exact
    assert all(row["first_key_lost"] <= row["errors"] for row in rows)
    assert all(row["chars_per_s"] > 0 and math.isfinite(row["chars_per_s"]) for row in rows)
    assert "| wtype (Wayland, foot) | unicode |" in result.stdout
    assert "| wayland (held open, foot) | long answer |" in result.stdout


def test_the_lifecycle_bench_reads_every_process_and_times_every_signal(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--lifecycle", "--idle-seconds", "2", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [written] = list(tmp_path.glob("*-lifecycle.json"))
    results = json.loads(written.read_text())
    processes = {*wiring.STAGES, "supervisord", "up"}
    for window in ("listening", "paused"):
        assert set(results[window]) == processes
        assert all(share >= 0 for share in results[window].values())
        assert results[f"{window}_total"] == round(sum(results[window].values()), 2)
    # The pipeline works while listening: in all it cannot have cost nothing. (One idle
    # process may: capture takes 0.5% of a core, less than a clock tick in 2 s.)
    assert results["listening_total"] > 0
    assert set(results["stop_s"]) == {"SIGTERM", "SIGHUP", "SIGINT"}
    assert all(seconds is not None and seconds > 0 for seconds in results["stop_s"].values()), results["stop_s"]
    assert "| **total** |" in result.stdout


@pytest.mark.parametrize("stage_name", ["instruct", "thinking"])
def test_the_raw_warm_baseline_evaluates_what_the_stage_warms_up_with(tmp_path, stage_name):
    """Like for like: the raw baseline's warm cache holds exactly the stage's own warm-up."""
    from harness import Harness

    from bench import raw
    from stages.instruct import Instruct
    from stages.thinking.stage import Thinking

    stage = Harness({"instruct": Instruct, "thinking": Thinking}[stage_name], tmp_path).stage
    model = raw.Model(stage.settings)
    for mode in stage.modes:
        assert model.prompt(mode, None) == stage.warm_up_prompt(mode)
        request = model.prompt(mode, "Hello there.")
        assert request.startswith(stage.warm_up_prompt(mode))
        assert request == stage.prompt(mode, [stage.user_message(mode, "Hello there.")], stage.tools())


def test_conversation_turns_are_the_model_requests_in_the_order_asked():
    from bench import conversation

    rows = [
        {"utt": "s@000009000ms", "mode": "chat", "llm_stage": "instruct"},
        {"utt": "s@000001000ms", "mode": "dictate"},
        {"utt": "s@000002000ms", "mode": "clarify", "llm_stage": "instruct"},
    ]
    assert [turn["utt"] for turn in conversation.turns(rows)] == ["s@000002000ms", "s@000009000ms"]


def test_the_cancel_bench_times_each_request_from_the_cancel_said_after_it():
    from bench import cancel

    asked = {
        "utt": "s@000001000ms",
        "mode": "converse",
        "outcome": "cancelled",
        "text": "",
        "last_key_ns": 9_400_000_000,
    }
    said = {"utt": "s@000004000ms", "text": "", "speech_end_ns": 8_000_000_000, "asr_final_ns": 9_100_000_000}
    [stopped] = cancel.stopped([said, asked])  # in the order spoken, whatever order they were typed in
    assert (stopped["utt"], stopped["outcome"]) == ("s@000001000ms", "cancelled")
    assert (stopped["speech_end_to_stopped_ms"], stopped["recognised_to_stopped_ms"]) == (1400.0, 300.0)
    assert cancel.stopped([asked]) == []  # no cancel said after it


def test_the_two_hosts_bench_reports_what_the_link_added_and_what_a_cut_held_back():
    from bench import two_hosts

    arm = {name: [500.0, 520.0, 510.0] for name in two_hosts.RECORDINGS}
    results = {
        "repeats": 3,
        "link_round_trip_ms": {"n": 50, "median": 0.05, "p90": 0.08},
        "arms": {"quiet": {"one host": arm, "two hosts": {name: [530.0, 540.0, 535.0] for name in arm}}},
        "cut": {
            "cut_after_s": 4.0,
            "cut_s": 6.0,
            "uncut": {"typed": "a b", "first_key_ms": {"u1": 500.0, "u2": 510.0}},
            "cut": {"typed": "a b", "first_key_ms": {"u1": 5600.0, "u2": 900.0}},
        },
        "load": {"other_processes_share": 0.0, "stolen_share": 0.0},
    }
    shown = two_hosts.markdown(results)
    assert "| quiet | jfk.flac | 510 | 535 | 25 | 1.05 |" in shown
    assert "| u1 | 500 | 5600 |" in shown and "| u2 |" not in shown, "only what the cut held back over a second"
    assert "The same text typed as uncut: yes. 1 utterance(s)" in shown
