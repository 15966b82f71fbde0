"""The load and slow-machine benches' arithmetic, on made-up runs: which arms run, how
a trace row is assigned to its part of the stream, medians, ratios to the reference
arm, the Pi projection and the Markdown. No arm is replayed here (minutes of real
time each): `voxkey bench --load` and `--slow` are run by hand."""

import math

import pytest
from conftest import AUDIO

from bench import arms, hogs, load, quota, slow

MS = 1_000_000  # ns


def parts() -> list[arms.Part]:
    return [
        arms.Part("dictation", "dictate", "Please send...", 0, 4000),
        arms.Part("chat", "chat", "What is the capital of France?", 7000, 9500),
        arms.Part("converse", "converse", "What is 17 times 23?", 17500, 20500),
    ]


def row(start_ms: int, end_ns: int, first_ns: int, last_ns: int, **more) -> dict:
    return {
        "utt": f"load@{start_ms:09d}ms",
        "speech_end_ns": end_ns,
        "first_key_ns": first_ns,
        "last_key_ns": last_ns,
        **more,
    }


def test_hog_arms_are_half_the_cores_and_every_core():
    assert hogs.counts(2) == {"quiet": 0, "half the cores busy": 1, "every core busy": 2}
    assert hogs.counts(4) == {"quiet": 0, "half the cores busy": 2, "every core busy": 4}
    assert hogs.counts(1) == {"quiet": 0, "every core busy": 1}


def test_hogs_spin_and_are_reaped():
    with hogs.hogs(2) as spinners:
        assert all(spinner.poll() is None for spinner in spinners)
    assert all(spinner.returncode is not None for spinner in spinners)
    switching = hogs.Hogs()
    switching.set(2)
    kept = switching.spinners[0]
    switching.set(1)
    assert switching.spinners == [kept] and kept.poll() is None
    switching.close()
    assert kept.returncode is not None and not switching.spinners


def test_a_stream_of_cycles_says_where_each_part_lies(tmp_path):
    built = arms.build(AUDIO, ["dictation", "chat"], {"dictation": 1.0, "chat": 2.0}, tmp_path / "s.wav", cycles=2)
    assert [(part.name, part.cycle) for part in built] == [("dictation", 0), ("chat", 0), ("dictation", 1), ("chat", 1)]
    starts = arms.cycle_starts_ms(built)
    assert starts[0] == 0 and starts[1] == built[1].end_ms + 2000
    assert arms.part_of(f"s@{built[3].start_ms - 100:09d}ms", built) is built[3]


def test_arms_rotate_so_none_is_always_first():
    names = ["quiet", "half", "every"]
    orders = [arms.rotation(names, repeat) for repeat in range(3)]
    assert [order[0] for order in orders] == names and all(sorted(order) == sorted(names) for order in orders)


def test_the_hogs_follow_the_cycle_playing():
    starts = [0, 30_000, 60_000]
    assert [load.cycle_at(starts, at) for at in (-500, 0, 29_999, 30_000, 95_000)] == [0, 0, 0, 1, 2]


def test_rows_are_measured_by_where_their_utterance_starts():
    rows = [
        row(3800, 3900 * MS, 4500 * MS, 4600 * MS),  # a second piece of the dictation: its last counts
        row(-200, 2000 * MS, 2600 * MS, 2700 * MS),  # the dictation's first piece, pre-roll before 0
        row(
            6800,
            9600 * MS,
            10_100 * MS,
            11_600 * MS,
            mode="chat",
            tokens_per_s=70.5,
            generated_tokens=90,
            outcome="answered",
        ),
        row(17_400, 20_600 * MS, 23_600 * MS, 24_600 * MS, mode="converse", outcome="cancelled"),
        row(30_000, 1, 2, 3),  # in no part
    ]
    rows[1]["utt"] = "load@000000000ms"
    [found] = arms.measures(rows, parts())
    assert found["dictation"] == {"routed": "dictate", "last_key_ms": 700.0}
    assert found["chat"] == {
        "routed": "chat",
        "last_key_ms": 2000.0,
        "first_key_ms": 500.0,
        "tokens_per_s": 70.5,
        "tokens": 90,
        "outcome": "answered",
    }
    assert found["converse"]["first_key_ms"] == 3000.0 and found["converse"]["last_key_ms"] is None  # cut short


def test_medians_and_ratios_to_the_reference():
    runs = [
        {"chat": {"last_key_ms": v, "outcome": o}}
        for v, o in ((900, "answered"), (1100, "cancelled"), (1000, "answered"))
    ]
    median = arms.medians(runs)
    assert median == {"chat": {"last_key_ms": 1000.0, "outcome": "answered/cancelled"}}
    assert arms.ratios({"chat": {"last_key_ms": 2500.0, "outcome": "x"}}, median) == {
        "chat": {"last_key_ms": 2.5, "outcome": None}
    }
    assert arms.ratio(1, 0) is None and arms.ratio(None, 3) is None


def load_results() -> dict:
    def run(scale: float) -> dict:
        return {
            "dictation": {"routed": "dictate", "last_key_ms": 800 * scale},
            "chat": {
                "routed": "chat",
                "first_key_ms": 700 * scale,
                "last_key_ms": 2000 * scale,
                "tokens_per_s": 80 / scale,
                "tokens": 9 * scale,
                "outcome": "answered",
            },
            "converse": {
                "routed": "converse",
                "first_key_ms": 4000 * scale,
                "last_key_ms": 5000 * scale,
                "tokens_per_s": 70 / scale,
            },
        }

    def raw(scale: float) -> dict:
        return {"dictation": {"asr_ms": 300 * scale}, "chat": {"ttft_ms": 50 * scale, "tokens_per_s": 90 / scale}}

    results = {
        "cores": 2,
        "repeats": 2,
        "order": ["quiet", "half the cores busy", "every core busy"] * 2,
        "cycle_s": 31.5,
        "elapsed_s": 400,
        "raw_rounds": 2,
        "load": {"other_processes_share": 0.4, "stolen_share": 0.0},
        "heat_start": {"at": "03:00:00", "line": "CPU frequency not exposed"},
        "heat_end": {"at": "03:09:00", "line": "CPU frequency not exposed"},
        "arms": {
            name: {"hogs": count, "runs": [run(s), run(s * 1.1)], "raw_runs": [raw(s)] * 2}
            for name, count, s in (("quiet", 0, 1.0), ("half the cores busy", 1, 1.5), ("every core busy", 2, 3.0))
        },
    }
    load.summarise(results)
    return results


def test_the_load_report_gives_each_figure_against_quiet_and_the_target():
    results = load_results()
    busy = results["arms"]["every core busy"]
    assert busy["ratio"]["dictation"]["last_key_ms"] == 3.0 and busy["raw_ratio"]["chat"]["tokens_per_s"] == 0.33
    text = load.markdown(results)
    assert "| every core busy | 2 | 2520.0 (3.0×) | 900.0 (3.0×) | dictate |" in text
    assert "chat end of speech → last key ms with every core busy: 3.0× quiet" in text
    assert "half the cores busy" not in text.split("Over the 2× target:")[1].split("\n")[0]
    assert "provisional" in text and "### Converse" in text and "chat tokens with" not in text


def test_quota_files_for_each_cgroup_version():
    assert quota.quota_files("v2", 0.25) == {"cpu.max": "2500 10000"}
    assert quota.quota_files("v1", 0.5) == {"cpu.cfs_period_us": "10000", "cpu.cfs_quota_us": "5000"}
    assert quota.own_cgroup("4:memory:/x\n1:cpu,cpuacct:/bench\n0::/user.slice\n", "v1") == "/bench"
    assert quota.own_cgroup("0::/user.slice\n", "v2") == "/user.slice"


def test_the_cpu_controller_is_found_or_not(tmp_path):
    assert quota.controller(tmp_path) is None
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert quota.controller(tmp_path) == ("v1", tmp_path / "cpu")
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert quota.controller(tmp_path) == ("v2", tmp_path)
    assert quota.probe(tmp_path / "nowhere").startswith("no CPU quota")


def test_slow_arms_shrink_from_every_core_to_a_quarter_of_one():
    planned = slow.plan([0, 1], quotas_allowed=True)
    assert list(planned) == ["2 cores", "1 core", "1 core at 50%", "1 core at 25%"]
    assert planned["2 cores"]["cpus"] is None and planned["1 core at 25%"] == {"cpus": [0], "quota": 0.25}
    assert [slow.compute(arm, 2) for arm in planned.values()] == [2, 1, 0.5, 0.25]
    assert list(slow.plan([0, 1, 2, 3], quotas_allowed=False)) == ["4 cores", "2 cores", "1 core"]


def test_interpolation_is_log_log_and_says_when_it_extrapolates():
    points = [(500.0, 1000.0), (1000.0, 2000.0), (2000.0, 8000.0)]
    value, outside = slow.interpolate(points, 1300.0)
    assert not outside and math.isclose(value, 2000 * 4 ** math.log2(1.3), rel_tol=1e-3)
    assert slow.interpolate(points, 4000.0) == (32000.0, True)
    assert slow.interpolate(points[:1], 800.0) == (None, True)


def slow_results() -> dict:
    entries = {}
    for name, compute, jfk, scale in (
        ("2 cores", 2, 600.0, 1),
        ("1 core", 1, 1000.0, 1.5),
        ("1 core at 50%", 0.5, 2000.0, 3),
    ):
        median = {
            "dictation": {"last_key_ms": 700.0 * scale},
            "chat": {"first_key_ms": 600.0 * scale, "last_key_ms": 1500.0 * scale, "routed": "chat"},
        }
        entries[name] = {"compute": compute, "jfk_ms": jfk, "median": median}
    reference = entries["2 cores"]["median"]
    for entry in entries.values():
        entry["ratio"] = arms.ratios(entry["median"], reference)
    results = {
        "cores": 2,
        "repeats": 2,
        "cycles_per_replay": 2,
        "allows": "CPU quota: cgroup v1",
        "arms": entries,
        "heat_start": {"at": "1", "line": "x"},
        "heat_end": {"at": "2", "line": "y"},
    }
    results["projection"] = slow.projection(results)
    return results


def test_a_pi_is_projected_where_its_whisper_time_falls_and_labelled():
    results = slow_results()
    project = results["projection"]
    assert project["pi_over_here"] == round(1300 / 600, 2) and project["pi_core_over_here_core"] == 5.2
    dictation = project["latency_ms"]["dictation last_key_ms"]
    assert not dictation["extrapolated"] and 1050 < dictation["value"] < 2100
    text = slow.markdown(results)
    assert (
        "projected (not measured)" in text
        and "Orange Pi 5" in text
        and "2.17× the time" in text
        and "unreliable" not in text
    )
    assert "| 1 core at 50% | 0.5 | 2000.0 | 2100.0 (3.0×) |" in text


@pytest.mark.parametrize("missing", ["chat"])
def test_a_part_that_never_came_leaves_its_cells_empty(missing):
    results = slow_results()
    for entry in results["arms"].values():
        entry["median"].pop(missing)
    results["projection"] = slow.projection(results)
    assert results["projection"]["latency_ms"]["chat first_key_ms"]["value"] is None
    assert "| 2 cores | 2 | 600.0 | 700.0 (1.0×) | – | – | – |" in slow.markdown(results)


def test_a_projection_whose_latency_does_not_follow_the_engine_is_called_unreliable():
    results = slow_results()
    results["arms"]["1 core"]["median"]["dictation"]["last_key_ms"] = 9000.0  # slower, on a faster engine time
    results["projection"] = slow.projection(results)
    assert not results["projection"]["monotone"] and "unreliable" in slow.markdown(results)
