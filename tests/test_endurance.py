"""`voxkey bench --soak` and `--recovery`: the arithmetic on fixed data, and one short
real run of each (real stages under supervisord, real SIGKILLs). No timing is
asserted; what is asserted is that nothing was lost and the report holds together."""

import json
import re
import subprocess
import sys

import pytest
from conftest import AUDIO, REPO

from bench import recovery, soak, workload

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def row(start_ms: int, text: str, **extra) -> dict:
    return {"utt": f"soak@{start_ms:09d}ms", "text": text, "errors": [], "typed_by": "router", **extra}


REFERENCE = [
    row(0, "Please send the report."),
    row(4_640, "The capital is Paris.", typed_by="instruct", mode="chat", llm_stage="instruct"),
]
CYCLE_MS = 8_570


def test_an_utterance_whose_pre_roll_reaches_into_the_previous_cycle_still_matches_its_cycle():
    rows = [
        row(0, "Please send the report."),
        row(4_640, "Paris.", typed_by="instruct", mode="chat"),
        row(CYCLE_MS - 218, " please send the report"),
        row(CYCLE_MS + 4_600, "It is Paris.", typed_by="instruct", mode="chat"),
    ]
    score = workload.score(rows, REFERENCE, CYCLE_MS, repeats=2)
    assert (score["expected"], score["typed"], score["right"]) == (4, 4, 4)
    assert score["missing"] == [] and score["unexpected"] == [] and score["different"] == []
    assert score["dictated_words_right"] == score["dictated_words_expected"] == 8


def test_missing_different_and_unexpected_utterances_are_each_named():
    rows = [
        row(0, "Please send the invoice."),
        row(CYCLE_MS + 2_000, "something else"),
        row(CYCLE_MS + 4_640, "", typed_by="instruct", mode="chat"),
    ]
    score = workload.score(rows, REFERENCE, CYCLE_MS, repeats=2)
    assert [(entry["cycle"], entry["utt"]) for entry in score["missing"]] == [
        (0, "soak@000004640ms"),
        (1, "soak@000000000ms"),
    ]
    assert {entry["utt"] for entry in score["different"]} == {"soak@000000000ms", f"soak@{CYCLE_MS + 4_640:09d}ms"}
    assert [entry["utt"] for entry in score["unexpected"]] == [f"soak@{CYCLE_MS + 2_000:09d}ms"]
    assert score["right"] == 0 and (score["dictated_words_right"], score["dictated_words_expected"]) == (
        3,
        8,
    )  # "please send the"


def test_words_are_aligned_to_the_right_repeat_of_a_repeated_sentence():
    sentence = "ask not what your country can do for you".split()
    typed = sentence * 2 + ["ask", "not", "why"] + sentence[3:] + sentence
    expected = sentence * 4
    assert workload.aligned_words(expected, typed) == len(expected) - 1
    assert workload.word_errors(expected, typed) == 1
    assert workload.word_error_rate(expected, typed) == 1 / len(expected)
    assert workload.word_errors(["a", "b"], []) == 2 and workload.word_errors([], ["a"]) == 1


def test_a_model_answer_counts_as_dictated_only_when_the_router_typed_it():
    assert workload.dictated(row(0, "x"))
    assert not workload.dictated(row(0, "x", typed_by="instruct"))
    assert not workload.dictated(row(0, "x", llm_stage="thinking"))
    assert workload.outcomes(
        [row(0, "a", typed_by="instruct", outcome="cancelled"), row(1, "b", typed_by="thinking"), row(2, "c")]
    ) == {"cancelled": 1, "unreported": 1}


def test_rss_slope_is_measured_after_the_warm_up_only():
    readings = [
        (t, {"asr": {"rss": (100 + (50 if t < 60 else 0) + t / 60) * 1e6, "pss": 1e6, "cpu_s": 0}})
        for t in range(0, 600, 5)
    ]
    memory = soak.memory_over_time(readings, warm_after_s=60)["asr"]
    assert memory["slope_mb_per_min"] == pytest.approx(1.0, abs=0.01)
    assert memory["first_mb"] == 150.0 and memory["warm_mb"] == 101.0 and memory["peak_mb"] == 150.9
    assert [entry["minute"] for entry in soak.per_minute(readings)] == list(range(10))
    assert soak.slope_per_minute([(0, 5.0)]) is None


def test_latency_and_the_cpu_others_took_are_told_by_ten_minutes_of_stream():
    cycle_ms = 60_000
    rows = [
        row(cycle * cycle_ms, "x", speech_end_ns=1, first_key_ns=1 + (500 + cycle) * 1_000_000) for cycle in range(25)
    ]
    windows = soak.latency_by_window(rows, cycle_ms)
    assert [w["from_min"] for w in windows] == [0, 10, 20]
    assert [w["all"]["n"] for w in windows] == [10, 10, 5] and windows[1]["all"]["median"] == 514.5
    # Two cores; the stages and the bench take 1 CPU s per s throughout, others 0.5 in the second window only.
    machine = [(10 + t, t * 1.0 + max(0, t - 600) * 0.5, t * 1.0) for t in range(0, 1200, 5)]
    assert soak.other_cpu_by_window(machine, ready_at=10, cpus=2) == {0: 0.0, 1: 0.25}


def test_kills_are_attributed_to_the_utterances_they_struck():
    rows = [
        {"utt": "a", "vad_ns": 1_000_000_000, "last_key_ns": 2_000_000_000},
        {"utt": "b", "vad_ns": 3_000_000_000, "last_key_ns": 4_000_000_000},
    ]
    assert recovery.in_flight({"killed": 1.5}, rows) == ["a"]
    assert recovery.in_flight({"killed": 2.5}, rows) == []
    summary = recovery.per_stage(
        [
            {"stage": "asr", "respawn_s": 0.5, "ready_s": 2.0, "in_flight": ["a"]},
            {"stage": "asr", "respawn_s": 0.7, "ready_s": 3.0, "in_flight": []},
        ]
    )
    assert summary["asr"]["kills"] == 2 and summary["asr"]["kills_mid_utterance"] == 1
    assert summary["asr"]["kill_to_ready_s"]["median"] == 2.5
    assert recovery.kill_order(["vad", "asr"], 2) == ["vad", "asr", "vad", "asr"]


@pytest.fixture(scope="module")
def endurance_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("endurance")
    recordings = [AUDIO / "dictate_report.wav", AUDIO / "chat_capital.wav"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            *map(str, recordings),
            "--soak",
            "0.3",
            "--recovery",
            "--kill-rounds",
            "1",
            "--settle",
            "1.5",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [path] = out.glob("*-endurance.json")
    return json.loads(path.read_text()), result.stdout, out, result.stderr


def test_soak_types_every_utterance_of_every_cycle_and_reads_memory_over_time(endurance_run):
    results, summary, out, progress = endurance_run
    soaked = results["soak"]
    assert soaked["cycles"] >= 2
    assert soaked["utterances"]["expected"] == 2 * soaked["cycles"]
    assert soaked["utterances"]["missing"] == [] and soaked["utterances"]["unexpected"] == []
    assert {"capture", "vad", "asr", "router", "instruct", "thinking", "keys"} <= soaked["memory"].keys()
    assert all(stage["end_mb"] > 0 for stage in soaked["memory"].values())
    assert soaked["restarts"] and not any(soaked["restarts"].values())
    assert soaked["losses"]["lost"] == 0
    assert "## Soak" in summary
    # A line per cycle as it goes. It tells what was typed by the time the next cycle
    # began typing (an answer may still be on its way): progress, not the accounting above.
    told = [line for line in progress.splitlines() if line.startswith("soak: cycle ")]
    assert [line.split(":")[1].strip() for line in told] == [
        f"cycle {n}/{soaked['cycles']}" for n in range(1, soaked["cycles"] + 1)
    ]
    assert all(
        re.search(r": \d+ utterances typed, end of speech to first key median (\d+ ms|-), total RSS \d+ MB$", line)
        for line in told
    ), told
    assert (out / next(out.glob("*-soak-rss.png")).name).read_bytes().startswith(PNG_SIGNATURE)


def test_recovery_kills_each_stage_and_loses_no_utterance(endurance_run):
    results, summary, *_ = endurance_run
    recovered = results["recovery"]
    assert [kill["stage"] for kill in recovered["kills"]] == list(recovery.KILLABLE)
    assert all(kill["ready_s"] > 0 for kill in recovered["kills"])
    assert recovered["utterances"]["missing"] == [] and recovered["utterances"]["unexpected"] == []
    assert recovered["utterances"]["right"] == recovered["utterances"]["expected"], recovered["utterances"]["different"]
    assert recovered["same_words_as_undisturbed"]
    assert "## Recovery" in summary


def test_two_utterances_typed_as_one_are_merged_not_missing():
    reference = [
        row(0, "Ask not what your country can do for you."),
        row(2_000, "Ask what you can do."),
        row(4_000, "Thank you."),
    ]
    rows = [row(0, "Ask not what your country can do for you, ask what you can do."), row(4_000, "Thank you.")]
    score = workload.score(rows, reference, cycle_ms=6_000, repeats=1)
    assert score["right"] == 1 and score["missing"] == [] and score["different"] == []
    assert [entry["utt"] for entry in score["merged"]] == ["soak@000000000ms", "soak@000002000ms"]
    assert score["dictated_words_right"] == score["dictated_words_expected"] == 16
