"""Recovery time per stage: while a replay is typing, SIGKILL one stage at a time and
time what the rest of the pipeline sees of its return.

* kill -> respawn: supervisord noticed and started a new process (its start time in
  /proc, to the clock tick);
* kill -> ready: the new process's heartbeat says ready (Python started, engine
  loaded, every peer it listens to heard), so it takes work again.

Kills come one at a time, each `settle_s` (with a random part, so kills land at
different moments of an utterance) after the previous stage was ready again. At the
end the typed text is compared with an undisturbed replay of the same stream: a
recovery that loses or doubles a word counts for nothing. Capture is not killed:
audio it never captured cannot be recovered (the README says so).
"""

import copy
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs, workload
from bench.stats import summarize
from bus import replay
from bus.frames import Heartbeat, Typed

KILLABLE = ("vad", "asr", "router", "instruct", "thinking", "keys")
# Silence after each recording. A restart delays the utterance in flight by the
# stage's recovery time; if the next speech began meanwhile, barge-in would cancel an
# answer as it cancels any answer the user talks over. The gap leaves room for both.
GAP_S = 6.0


@dataclass
class KillSchedule:
    """The `observe` callback of bus.replay.run that does the killing and the timing."""

    order: list[str]
    settle_s: float
    rng: random.Random
    done: list = field(default_factory=list)
    current: dict | None = None
    next_kill_at: float | None = None  # set once typing has begun

    def __call__(self, supervisor, frame) -> None:
        now = time.monotonic()
        if frame is None:
            self._maybe_kill(supervisor, now)
        elif isinstance(frame.body, Heartbeat):
            self._heard(frame.src, frame.body, now)
        elif isinstance(frame.body, Typed) and self.next_kill_at is None:
            self.next_kill_at = now + self._pause()

    def _pause(self) -> float:
        return self.settle_s * self.rng.uniform(0.5, 1.5)

    def _maybe_kill(self, supervisor, now: float) -> None:
        if self.current is not None or self.next_kill_at is None or now < self.next_kill_at:
            return
        if len(self.done) >= len(self.order):
            return
        stage = self.order[len(self.done)]
        pid = supervisor.states().get(stage, {}).get("pid")
        if not pid:
            return
        os.kill(pid, signal.SIGKILL)
        self.current = {"stage": stage, "pid": pid, "killed": time.monotonic(), "killed_boot": time.clock_gettime(time.CLOCK_BOOTTIME)}

    def _heard(self, stage: str, beat: Heartbeat, now: float) -> None:
        current = self.current
        if current is None or stage != current["stage"] or beat.pid == current["pid"] or not beat.ready:
            return
        current["ready_s"] = round(now - current["killed"], 3)
        reading = procs.sample(beat.pid)
        if reading is not None:
            current["respawn_s"] = round(reading["started_s"] - current.pop("killed_boot"), 2)
        self.done.append(current)
        self.current = None
        self.next_kill_at = now + self._pause()


def kill_order(stages: list[str], rounds: int) -> list[str]:
    return [stage for _ in range(rounds) for stage in stages]


def repeats_needed(cycle: workload.Cycle, kills: int, settle_s: float, expected_recovery_s: float = 4.0) -> int:
    """Cycles enough for every kill to land while there is still speech to type."""
    return max(2, int(kills * (settle_s + expected_recovery_s) / cycle.seconds) + 2)


def in_flight(kill: dict, rows: list[dict]) -> list[str]:
    """The utterances between leaving vad and their last keystroke when `kill` struck."""
    killed_ns = kill["killed"] * 1e9
    return [row["utt"] for row in rows if row.get("vad_ns", 0) <= killed_ns <= row.get("last_key_ns", 0)]


def per_stage(done: list[dict]) -> dict:
    stages: dict[str, dict] = {}
    for kill in done:
        times = stages.setdefault(kill["stage"], {"respawn": [], "ready": [], "busy": 0})
        times["respawn"].append(kill.get("respawn_s"))
        times["ready"].append(kill.get("ready_s"))
        times["busy"] += bool(kill.get("in_flight"))
    return {
        stage: {"kills": len(times["ready"]), "kills_mid_utterance": times["busy"],
                "kill_to_respawn_s": summarize(times["respawn"], 2), "kill_to_ready_s": summarize(times["ready"], 2)}
        for stage, times in stages.items()
    }


def run(config: dict, recordings: list[Path], rounds: int, settle_s: float, work_dir: Path, gap_s: float, tail_s: float,
        seed: int, say=print) -> dict:
    cycle = workload.build_cycle(recordings, gap_s)
    order = kill_order(list(KILLABLE), rounds)
    repeats = repeats_needed(cycle, len(order), settle_s)
    stream = workload.write_stream(cycle, repeats, work_dir / "recovery.wav", tail_s)
    say(f"recovery: undisturbed reference ({repeats} cycles of {cycle.seconds:.1f} s)")
    reference = replay.run(copy.deepcopy(config), str(stream))
    say(f"recovery: {len(order)} kills ({rounds} per stage), replaying at real time")
    schedule = KillSchedule(order, settle_s, random.Random(seed))
    state = replay.run(copy.deepcopy(config), str(stream), realtime=True, observe=schedule)
    unfinished = [schedule.current] if schedule.current else []
    rows = list(state.rows.values())
    for kill in schedule.done + unfinished:
        kill["in_flight"] = in_flight(kill, rows)
    return {
        "recordings": cycle.recordings,
        "cycles": repeats,
        "seed": seed,
        "settle_s": settle_s,
        "kills": schedule.done + unfinished,
        "per_stage": per_stage(schedule.done),
        "not_done": len(order) - len(schedule.done),
        "typed_equals_undisturbed": state.text == reference.text,
        "same_words_as_undisturbed": workload.words(state.text) == workload.words(reference.text),
        "utterances": workload.score_whole(rows, list(reference.rows.values())),
        "typed": [{key: row.get(key) for key in ("utt", "text", "typed_by", "vad_ns", "first_key_ns", "last_key_ns")} for row in rows],
    }
