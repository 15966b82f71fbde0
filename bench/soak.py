"""The soak: the recordings replayed in a loop at real time for N minutes through one
pipeline that stays up, as a day of use would run it. What it answers: does any
stage's memory grow with use, does latency drift, and is every utterance of every
repeat typed as an undisturbed single pass typed it?

The reference is one cycle replayed alone (as fast as the stages go); the soak is the
same cycle repeated into one stream. Memory is read from /proc every few seconds; the
growth of a stage is the least-squares slope of its RSS after the first cycle, when
every code path has run once and allocated what it keeps.
"""

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import pipeline, procs, workload
from bench.stats import ms_between, summarize
from bus import wiring
from bus.frames import Heartbeat, Typed
from voxkey import replay

MB = 1e6
# Silence after each recording: room for an answer to be typed before the next speech,
# which would cancel it (barge-in) and make the soak measure races, not endurance.
GAP_S = 3.0


@dataclass
class Timeline:
    """The `observe` callback of voxkey.replay.run: every `every_s` seconds a reading of
    each stage process (and their heartbeats: who is ready)."""

    every_s: float = 5.0
    started: float = field(default_factory=time.monotonic)
    readings: list = field(default_factory=list)  # (seconds since start, {stage: reading})
    # (seconds since start, busy CPU s of the machine, CPU s of the stages and this process)
    machine: list = field(default_factory=list)
    heartbeats: dict = field(default_factory=dict)
    pids: dict = field(default_factory=dict)  # stage -> every pid it had
    ready_at: float | None = None
    # The progress line, one per cycle of audio: a soak of hours must show it is alive.
    cycle_ms: int = 0
    cycles: int = 0
    say: object = None
    typed: dict = field(default_factory=dict)  # cycle -> end of speech to first key (ms) of each utterance
    told: int = 0  # cycles told about
    _next: float = 0.0

    def __call__(self, supervisor, frame) -> None:
        now = time.monotonic()
        if frame is not None:
            if isinstance(frame.body, Typed):
                self._on_typed(frame)
            if isinstance(frame.body, Heartbeat):
                self.heartbeats[frame.src] = frame.body
                if self.ready_at is None and all(
                    getattr(self.heartbeats.get(stage), "ready", False) for stage in wiring.STAGES
                ):
                    self.ready_at = now - self.started
            return
        if now < self._next:
            return
        self._next = now + self.every_s
        reading = {}
        for name, info in supervisor.states().items():
            sample = procs.sample(info.get("pid", 0)) if info.get("pid") else None
            if sample is not None:
                reading[name] = {key: sample.get(key, 0) for key in ("rss", "pss", "cpu_s")}
                self.pids.setdefault(name, set()).add(info["pid"])
        if reading:
            self.readings.append((round(now - self.started, 1), reading))
            ours = sum(values["cpu_s"] for values in reading.values()) + sum(os.times()[:2])
            self.machine.append((now - self.started, procs.machine_reading()["busy_s"], ours))

    def _on_typed(self, frame) -> None:
        """Count each utterance's first keystroke in its cycle; tell a cycle once the
        next one has begun typing (an answer of the told one may still be on its way:
        this is progress for a person watching; the accounting is `workload.score`)."""
        cycle = workload.cycle_of({"utt": frame.utt}, self.cycle_ms) if self.cycle_ms else None
        end, first = frame.marks.get("speech_end"), frame.marks.get("first_key")
        if cycle is None or not (end and first):
            return
        self.typed.setdefault(cycle, {}).setdefault(frame.utt, (first - end) / 1e6)
        while self.say is not None and self.told < cycle:
            self._tell(self.told)
            self.told += 1

    def tell_the_rest(self) -> None:
        while self.say is not None and self.told < self.cycles:
            self._tell(self.told)
            self.told += 1

    def _tell(self, cycle: int) -> None:
        latencies = list(self.typed.get(cycle, {}).values())
        median = summarize(latencies)["median"]
        latency = "-" if median is None else f"{median:.0f} ms"
        rss = sum(values["rss"] for values in self.readings[-1][1].values()) / MB if self.readings else 0.0
        self.say(
            f"soak: cycle {cycle + 1}/{self.cycles}: {len(latencies)} utterances typed, end of speech to first key "
            f"median {latency}, total RSS {rss:.0f} MB"
        )


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if not spread:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 60


def memory_over_time(readings: list, warm_after_s: float) -> dict:
    """Per stage: RSS when first read, after the warm-up, at the end and at its peak
    (MB), and the growth rate after the warm-up (MB per minute)."""
    stages: dict[str, dict] = {}
    for name in sorted({name for _, reading in readings for name in reading}):
        series = [(t, reading[name]["rss"] / MB) for t, reading in readings if name in reading]
        warm = [(t, rss) for t, rss in series if t >= warm_after_s] or series[-1:]
        pss = [reading[name]["pss"] / MB for _, reading in readings if name in reading]
        slope = slope_per_minute(warm)
        stages[name] = {
            "first_mb": round(series[0][1], 1),
            "warm_mb": round(warm[0][1], 1),
            "end_mb": round(series[-1][1], 1),
            "peak_mb": round(max(rss for _, rss in series), 1),
            "growth_after_warm_mb": round(series[-1][1] - warm[0][1], 1),
            "slope_mb_per_min": None if slope is None else round(slope, 3),
            "end_pss_mb": round(pss[-1], 1),
        }
    return stages


def per_minute(readings: list) -> list[dict]:
    """RSS (MB) of every stage at the first reading of each minute, and the total."""
    rows, seen = [], set()
    for t, reading in readings:
        minute = int(t // 60)
        if minute in seen:
            continue
        seen.add(minute)
        stages = {name: round(values["rss"] / MB, 1) for name, values in sorted(reading.items())}
        rows.append({"minute": minute, "t_s": t, "rss_mb": stages, "total_mb": round(sum(stages.values()), 1)})
    return rows


def latency_by_cycle(rows: list[dict], cycle_ms: int) -> list[dict]:
    """End of speech -> first keystroke per cycle, dictated and all: drift shows here."""
    by_cycle: dict[int, list[dict]] = {}
    for row in rows:
        cycle = workload.cycle_of(row, cycle_ms)
        if cycle is not None:
            by_cycle.setdefault(cycle, []).append(row)
    return [
        {
            "cycle": cycle,
            "dictated": summarize(
                [ms_between(row, "speech_end_ns", "first_key_ns") for row in members if workload.dictated(row)]
            ),
            "all": summarize([ms_between(row, "speech_end_ns", "first_key_ns") for row in members]),
        }
        for cycle, members in sorted(by_cycle.items())
    ]


def latency_by_window(rows: list[dict], cycle_ms: int, window_min: float = 10) -> list[dict]:
    """End of speech -> first keystroke per `window_min` of the stream (by where each
    utterance's cycle began): drift over hours shows here, steadier than per cycle."""
    window_ms = window_min * 60_000
    by_window: dict[int, list[float]] = {}
    dictated: dict[int, list[float]] = {}
    for row in rows:
        cycle = workload.cycle_of(row, cycle_ms)
        latency = ms_between(row, "speech_end_ns", "first_key_ns")
        if cycle is None or latency is None:
            continue
        window = int(cycle * cycle_ms // window_ms)
        by_window.setdefault(window, []).append(latency)
        if workload.dictated(row):
            dictated.setdefault(window, []).append(latency)
    return [
        {
            "from_min": round(window * window_min),
            "dictated": summarize(dictated.get(window, [])),
            "all": summarize(latencies),
        }
        for window, latencies in sorted(by_window.items())
    ]


def other_cpu_by_window(machine: list, ready_at: float, cpus: int, window_min: float = 10) -> dict[int, float]:
    """Per `window_min` of the stream (from when every stage was ready): the share of the
    machine's CPU that processes other than the pipeline took. A window where it is high
    measured a busy machine, not the pipeline: latency there says nothing of drift."""
    window_s = window_min * 60
    edges: dict[int, list] = {}
    for t, busy, ours in machine:
        if t >= ready_at:
            edges.setdefault(int((t - ready_at) // window_s), []).append((t, busy, ours))
    shares = {}
    for window, points in edges.items():
        (t0, busy0, ours0), (t1, busy1, ours1) = points[0], points[-1]
        if t1 > t0:
            shares[window] = round(max(0.0, (busy1 - busy0) - (ours1 - ours0)) / ((t1 - t0) * cpus), 3)
    return shares


def run(
    config: dict, recordings: list[Path], minutes: float, work_dir: Path, gap_s: float, tail_s: float, say=print
) -> dict:
    cycle = workload.build_cycle(recordings, gap_s)
    repeats = workload.cycles_for(cycle, minutes)
    say(f"soak: reference pass over one cycle ({cycle.seconds:.1f} s: {', '.join(cycle.recordings)})")
    once = workload.write_stream(cycle, 1, work_dir / "soak-reference.wav", tail_s)
    reference = list(replay.run(copy.deepcopy(config), str(once)).rows.values())
    stream = workload.write_stream(cycle, repeats, work_dir / "soak.wav", tail_s)
    say(f"soak: {repeats} cycles, {repeats * cycle.seconds / 60:.1f} min at real time, memory read every 5 s")
    timeline = Timeline(cycle_ms=cycle.ms, cycles=repeats, say=say)
    started = time.monotonic()
    state = replay.run(copy.deepcopy(config), str(stream), realtime=True, observe=timeline)
    timeline.tell_the_rest()
    rows = list(state.rows.values())
    counters = state.counters
    other_cpu = other_cpu_by_window(timeline.machine, timeline.ready_at or 0.0, os.cpu_count() or 1)
    warm_after = (timeline.ready_at or 0.0) + cycle.seconds
    return {
        "recordings": cycle.recordings,
        "cycle_s": round(cycle.seconds, 2),
        "cycles": repeats,
        "audio_min": round(repeats * cycle.seconds / 60, 2),
        "wall_min": round((time.monotonic() - started) / 60, 2),
        "all_ready_s": timeline.ready_at,
        "utterances": workload.score(rows, reference, cycle.ms, repeats),
        "memory": memory_over_time(timeline.readings, warm_after),
        "memory_by_minute": per_minute(timeline.readings),
        "latency_by_cycle": latency_by_cycle(rows, cycle.ms),
        "latency_by_10_min": [
            {**window, "other_cpu_share": other_cpu.get(window["from_min"] // 10)}
            for window in latency_by_window(rows, cycle.ms)
        ],
        "restarts": {name: len(pids) - 1 for name, pids in sorted(timeline.pids.items())},
        "losses": pipeline.bus_losses(counters),
        "counters": counters,
        "series": [
            (t, {name: round(values["rss"] / MB, 1) for name, values in reading.items()})
            for t, reading in timeline.readings
        ],
    }
