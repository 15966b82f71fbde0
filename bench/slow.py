"""`voxkey bench --slow`: the pipeline on less compute, and a Pi 5 projected from it.

A dictation (dictate_report.wav) then a chat request (chat_capital.wav) are replayed at
real time through every process, confined a little more each arm:

* all the cores, then fewer (every stage pinned with `stages.NAME.cpus`, so each
  engine's thread count follows the cores it is given, as on a smaller machine);
* one core with a CPU quota (bench.quota: a cgroup with half, then a quarter of a core),
  where the machine allows it (`probe` says; a container may not).

Reported per arm: dictation end of speech -> last key, chat end of speech -> first
key and -> last key, and the same engine quantity the published Pi figures measure:
faster-whisper tiny.en on jfk.flac (11 s), raw, in this process under the same
confinement, padded to the 30 s window as faster-whisper's transcribe pads it. A Pi 5
is then *projected*, not measured: PI_JFK_MS is the published time of faster-whisper
tiny on that 11 s file on Cortex-A76 cores (an Orange Pi 5, /work/shared/NOTES.md
"The Pi 5 and a busy desk"); the Pi sits where that time falls
among the arms' raw jfk times, and each latency is interpolated there (log-log between
the two nearest arms). It assumes the whole pipeline slows as Whisper does; the models
decode on memory bandwidth as much as on compute, so treat the chat figures as rougher.
"""

import copy
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

from bench import arms, procs, quota
from bench.pinning import pinned
from bench.raw import Whisper
from bench.report import section
from bench.stats import percentile
from bus.wiring import STAGES
from stages.capture import audio

REPEATS = 2  # replays per arm (each a fresh pipeline, as pinning needs) ...
CYCLES = 2  # ... of the stream this many times over: medians of 4 per arm
GAPS_S = {"dictation": 3.0, "chat": 4.0}  # a chat answer still going when the next dictation is said is cut
QUOTAS = (0.5, 0.25)  # of one core
JFK_REPEATS = 2  # per arm and repeat
PI_JFK_MS = 1300.0  # faster-whisper tiny, jfk.flac (11 s), Cortex-A76 (Orange Pi 5): NOTES.md
PI_SOURCE = (
    "faster-whisper tiny on an 11 s file (jfk.flac) in 1.3 s on an Orange Pi 5's Cortex-A76 cores, the Pi 5's "
    "core (published; /work/shared/NOTES.md, 'The Pi 5 and a busy desk'); thread count not stated: "
    "faster-whisper's default is 4"
)
PI_CORES = 4
PROJECTED = ("dictation last_key_ms", "chat first_key_ms", "chat last_key_ms")
LABELS = {
    "dictation last_key_ms": "dictation: end of speech → last key",
    "chat first_key_ms": "chat: end of speech → first key",
    "chat last_key_ms": "chat: end of speech → last key",
}


def plan(cores: list[int], quotas_allowed: bool) -> dict[str, dict]:
    """The arms, from the most compute to the least: name -> {"cpus", "quota"}.
    All cores, half of them (when that is a different count), one; then one core with
    each quota, if cgroups allow it."""
    counts = sorted({len(cores), max(1, len(cores) // 2), 1}, reverse=True)
    found = {
        f"{count} core{'s' if count > 1 else ''}": {
            "cpus": None if count == len(cores) else cores[:count],
            "quota": None,
        }
        for count in counts
    }
    if quotas_allowed:
        for share in QUOTAS:
            found[f"1 core at {share:.0%}"] = {"cpus": cores[:1], "quota": share}
    return found


def compute(arm: dict, cores: int) -> float:
    """Cores' worth of CPU an arm has."""
    count = len(arm["cpus"]) if arm["cpus"] else cores
    return count * (arm["quota"] or 1.0)


@contextmanager
def confined(arm: dict):
    """This process on the arm's cores and in its quota for the block (the raw engine);
    yields the Quota (or None) so a replay can leave it once supervisord runs."""
    before = os.sched_getaffinity(0)
    group = quota.Quota(arm["quota"]) if arm["quota"] else None
    try:
        if arm["cpus"]:
            os.sched_setaffinity(0, arm["cpus"])
        if group:
            group.enter()
        yield group
    finally:
        if group:
            group.leave()
        os.sched_setaffinity(0, before)
        if group:
            group.remove()


def arm_config(config: dict, arm: dict) -> dict:
    return pinned(config, {stage: arm["cpus"] for stage in STAGES}) if arm["cpus"] else config


def jfk_ms(config: dict, arm: dict, jfk) -> float:
    """Raw faster-whisper on jfk.flac under the arm: median of JFK_REPEATS. Padded to
    Whisper's 30 s window whatever the stage's `encode`: the published Pi figure is
    faster-whisper's own transcribe, which pads, and a yardstick must measure the same
    work on both machines."""
    with confined(arm):
        whisper = Whisper({**arm_config(config, arm)["stages"]["asr"], "encode": "window"})
        return round(percentile([whisper.transcribe(jfk)[0] for _ in range(JFK_REPEATS)], 50), 1)


def replay(config: dict, arm: dict, stream: Path, parts) -> list[dict]:
    """One replay with the pipeline inside the arm: pinned through the config, and in
    the quota from supervisord's start (this process leaves it at once); per cycle."""
    with confined({**arm, "cpus": None}) as group:
        leaving = [group.leave] if group else []

        def observe(_frame) -> None:
            while leaving:
                leaving.pop()()

        cycles = arms.measures(arms.run(arm_config(config, arm), stream, observe), parts)
        throttled = group.throttled() if group else {}
    if throttled:
        cycles[0]["quota"] = {key: throttled.get(key) for key in ("nr_periods", "nr_throttled")}
    return cycles


def interpolate(points: list[tuple[float, float]], x: float) -> tuple[float | None, bool]:
    """y at x, log-log, between the two points nearest x (x, y > 0); and whether x lies
    outside the points (an extrapolation)."""
    points = sorted((px, py) for px, py in points if px and py and px > 0 and py > 0)
    if len(points) < 2:
        return None, True
    inside = points[0][0] <= x <= points[-1][0]
    lower = max((p for p in points if p[0] <= x), default=points[0], key=lambda p: p[0])
    index = points.index(lower)
    (x0, y0), (x1, y1) = (points[index], points[index + 1]) if index + 1 < len(points) else points[-2:]
    if x1 == x0:
        return y0, not inside
    slope = (math.log(y1) - math.log(y0)) / (math.log(x1) - math.log(x0))
    return round(math.exp(math.log(y0) + slope * (math.log(x) - math.log(x0))), 1), not inside


def projection(results: dict) -> dict:
    """A Pi 5, projected from the arms: where PI_JFK_MS falls among their raw jfk times."""
    by_arm = results["arms"]
    whole = next(iter(by_arm.values()))  # the first arm: every core
    one_core = next((entry for entry in by_arm.values() if entry["compute"] == 1.0), None)
    found = {
        "monotone": True,  # each latency grows with the raw engine time across the arms (else: noise rules)
        "pi_jfk_ms": PI_JFK_MS,
        "source": PI_SOURCE,
        "here_jfk_ms": whole["jfk_ms"],
        "pi_over_here": arms.ratio(PI_JFK_MS, whole["jfk_ms"]),
        # one A76 core against one core here, if the Pi's 4 threads scaled perfectly (they do not: an upper bound)
        "pi_core_over_here_core": arms.ratio(PI_JFK_MS * PI_CORES, one_core["jfk_ms"]) if one_core else None,
        "latency_ms": {},
    }
    for key in PROJECTED:
        part, measure = key.split()
        points = [(entry["jfk_ms"], entry["median"].get(part, {}).get(measure)) for entry in by_arm.values()]
        value, outside = interpolate(points, PI_JFK_MS)
        ordered = [y for _, y in sorted(point for point in points if point[1] is not None)]
        found["monotone"] = found["monotone"] and all(a <= b for a, b in zip(ordered, ordered[1:]))
        found["latency_ms"][key] = {"value": value, "extrapolated": outside}
    return found


def measure(config: dict, audio_dir: Path, out_dir: Path, say, repeats: int = REPEATS) -> dict:
    work = arms.work_dir(out_dir, "slow")
    config = copy.deepcopy(config)
    config["cli"]["stall_timeout_s"] = max(600.0, float(config["cli"]["stall_timeout_s"]))  # loading on a quarter core
    stream = work / "slow.wav"
    parts = arms.build(audio_dir, list(GAPS_S), GAPS_S, stream, cycles=CYCLES)
    cores = sorted(os.sched_getaffinity(0))
    allows = quota.probe()
    say(f"slow: {allows}")
    plan_ = plan(cores, allows.startswith("CPU quota"))
    results: dict = {
        "cores": len(cores),
        "repeats": repeats,
        "allows": allows,
        "cycles_per_replay": CYCLES,
        "stream": [vars(part) for part in parts[: len(GAPS_S)]],
        "heat_start": arms.heat_now(),
        "arms": {name: {**arm, "compute": compute(arm, len(cores)), "runs": []} for name, arm in plan_.items()},
    }
    jfk = audio.read_all(audio_dir / "jfk.flac")
    before = procs.machine_reading()
    started = time.monotonic()
    for repeat in range(repeats):
        for name in arms.rotation(list(plan_), repeat):
            say(f"slow: {repeat + 1}/{repeats}, {name}: raw faster-whisper on jfk.flac, then replaying at real time")
            entry = results["arms"][name]
            entry.setdefault("jfk_runs_ms", []).append(jfk_ms(config, plan_[name], jfk))
            entry["runs"] += replay(config, plan_[name], stream, parts)
    results["elapsed_s"] = round(time.monotonic() - started)
    results["load"] = procs.foreign_load(before, procs.machine_reading(), len(cores))
    results["heat_end"] = arms.heat_now()
    reference = None
    for entry in results["arms"].values():
        entry["jfk_ms"] = round(percentile(entry["jfk_runs_ms"], 50), 1)
        entry["median"] = arms.medians([{k: v for k, v in run.items() if k != "quota"} for run in entry["runs"]])
        reference = reference or entry["median"]
        entry["ratio"] = arms.ratios(entry["median"], reference)
    results["projection"] = projection(results)
    return arms.save(results, work, markdown(results))


def markdown(results: dict) -> str:
    rows = []
    for name, entry in results["arms"].items():
        dictation, chat = entry["median"].get("dictation", {}), entry["median"].get("chat", {})
        times_d, times_c = entry["ratio"].get("dictation", {}), entry["ratio"].get("chat", {})
        rows.append(
            [
                name,
                entry["compute"],
                entry["jfk_ms"],
                arms.cell(dictation.get("last_key_ms"), times_d.get("last_key_ms")),
                arms.cell(chat.get("first_key_ms"), times_c.get("first_key_ms")),
                arms.cell(chat.get("last_key_ms"), times_c.get("last_key_ms")),
                chat.get("routed"),
            ]
        )
    project = results["projection"]
    projected = [
        [LABELS[key], value["value"], "extrapolated" if value["extrapolated"] else "interpolated"]
        for key, value in project["latency_ms"].items()
    ]
    heat_start, heat_end = results["heat_start"], results["heat_end"]
    return "\n".join(
        section(
            f"Slow machine: latency as compute shrinks ({results['cores']} cores here, medians of "
            f"{results['repeats'] * results['cycles_per_replay']} per arm: {results['repeats']} replays of "
            f"{results['cycles_per_replay']} cycles)",
            [
                "arm",
                "cores' worth",
                "raw jfk.flac ms",
                "dictation end of speech → last key ms",
                "chat → first key ms",
                "chat → last key ms",
                "chat routed",
            ],
            rows,
            notes=[
                f"(×) is the ratio to the first arm. This machine: {results['allows']}. "
                + (
                    f"Other processes took {results['load']['other_processes_share']:.0%} of it meanwhile."
                    if "load" in results
                    else ""
                ),
                f"Heat at the start ({heat_start['at']}): {heat_start['line']}. At the end ({heat_end['at']}): "
                f"{heat_end['line']}.",
            ],
            level=3,
        )
        + section(
            "A Pi 5, projected (not measured)"
            + ("" if project["monotone"] else ": unreliable, latency does not grow with the raw engine's time"),
            ["figure", "projected ms", "between arms"],
            projected,
            notes=[
                f"Ratio used: a Pi 5 runs faster-whisper tiny on jfk.flac in {project['pi_jfk_ms']:.0f} ms, against "
                f"{project['here_jfk_ms']} ms on all {results['cores']} cores here: {project['pi_over_here']}× the "
                "time "
                f"(per core: one A76 core at most {project['pi_core_over_here_core']}× slower than one here, if its "
                f"{PI_CORES} threads scaled perfectly). Source: " + project["source"] + ".",
                "The Pi is placed where its jfk time falls among the arms' raw jfk times (measured here: on a busy "
                "machine one thread can beat two, so the arms are ordered by that time, not by cores), and each "
                "latency is interpolated there, log-log. It assumes the pipeline slows as Whisper does; the models "
                "decode on memory bandwidth too (published: ~0.5B Q4 models decode 20-34 tokens/s on a Pi 5, a model "
                "four times SmolLM2's size), so the chat figures are rougher than the dictation one. A Pi's four "
                "cores also let stages overlap that share one confined core here: for that, the projection errs slow.",
            ],
            level=3,
        )
    )
