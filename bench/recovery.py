"""Recovery time per stage: while a replay is typing, SIGKILL one stage at a time and
time what the rest of the pipeline sees of its return.

* kill -> respawn: supervisord noticed and started a new process (its start time in
  /proc, to the clock tick);
* kill -> ready: the new process's heartbeat says ready (Python started, engine
  loaded, every peer it listens to heard), so it takes work again.

Kills come one at a time, each `settle_s` (with a random part) after the previous
stage was ready again. vad is killed at that moment, whatever it is hearing (a kill
mid-speech is its hard case); any other stage is killed within `STRIKE_WINDOW_S` of
the next utterance leaving vad, while the utterance is on its way through the
stages after it. The report counts the kills that struck an utterance in flight. At the
end the typed text is compared with an undisturbed replay of the same stream: a
recovery that loses or doubles a word counts for nothing. Capture is not killed:
audio it never captured cannot be recovered (the README says so).

A speaker waits for an answer before speaking again; a recording does not, and new
speech over an answer being typed cuts it (barge-in), so on a slow machine the
replay would cut answers the undisturbed run typed whole. So the recording is paused
(capture's `listen off`, which holds a recording where it is) from each utterance's
end, as vad sends it, until that utterance's last keystroke has been reported: a
handshake, whatever a stage's restart or a model's answer takes.
"""

import copy
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from bench import procs, workload
from bench.stats import summarize
from bus import asking, frames, sockets
from bus.frames import Heartbeat, Speech, Typed
from voxkey import replay

KILLABLE = ("vad", "asr", "router", "instruct", "thinking", "keys")
# Silence after each recording, as a speaker pauses between sentences.
GAP_S = 6.0
# An utterance takes about a second from vad to its last keystroke (dictation): a kill
# this soon after it left vad strikes it somewhere on its way.
STRIKE_WINDOW_S = 1.0


@dataclass
class KillSchedule:
    """The `observe` callback of voxkey.replay.run that does the killing and the timing."""

    order: list[str]
    settle_s: float
    rng: random.Random
    config: dict  # the replay's: its run directory is known once the replay has begun
    done: list = field(default_factory=list)
    current: dict | None = None
    next_kill_at: float | None = None  # set once typing has begun
    strike_at: float | None = None  # for the kill due: when to strike
    last_speech_s: float = 0.0  # when vad last sent an utterance (its `vad` mark)
    awaited: set = field(default_factory=set)  # utterances cut by vad, their last keystroke not yet reported
    answered: set = field(default_factory=set)  # utterances whose last keystroke was reported
    paused: bool = False
    _context: zmq.Context | None = None
    _speech: zmq.Socket | None = None

    def __call__(self, supervisor, frame) -> None:
        now = time.monotonic()
        if self._speech is None:  # the run directory exists once the replay has begun
            self._context = zmq.Context()
            self._speech = sockets.subscriber(self._context, [sockets.endpoint(self.config, "vad")], [Speech.TOPIC])
        self._drain_speech()
        body = getattr(frame, "body", None)
        if isinstance(body, Heartbeat):
            self._heard(frame.src, body, now)
        elif isinstance(body, Typed) and self.next_kill_at is None:
            self.next_kill_at = now + self._pause()
        self._wait_for_answers(frame)
        self._maybe_kill(supervisor, now)

    def _wait_for_answers(self, frame) -> None:
        """Pause the recording while an utterance vad has cut is not typed to its end."""
        body = getattr(frame, "body", None)
        if isinstance(body, Speech) and frame.utt not in self.answered:
            self.awaited.add(frame.utt)  # vad may send it again after a restart: once typed, it is done
        elif isinstance(body, Typed) and body.final:
            self.answered.add(frame.utt)
            self.awaited.discard(frame.utt)
        if bool(self.awaited) != self.paused:
            self.paused = bool(self.awaited)
            asking.ask(self.config, "capture", "listen", {"how": "off" if self.paused else "on"})

    def close(self) -> None:
        if self._speech is not None:
            self._speech.close()
            self._context.term()

    def _drain_speech(self) -> None:
        while self._speech.poll(0):
            try:
                frame = frames.decode(self._speech.recv_multipart())
            except frames.FrameRejected:
                continue
            self.last_speech_s = max(self.last_speech_s, frame.marks.get("vad", 0) / 1e9)

    def _pause(self) -> float:
        return self.settle_s * self.rng.uniform(0.5, 1.5)

    def _maybe_kill(self, supervisor, now: float) -> None:
        if self.current is not None or self.next_kill_at is None or now < self.next_kill_at:
            return
        if len(self.done) >= len(self.order):
            return
        stage = self.order[len(self.done)]
        if stage != "vad":
            if self.strike_at is None and self.last_speech_s >= self.next_kill_at:
                self.strike_at = self.last_speech_s + self.rng.uniform(0.0, STRIKE_WINDOW_S)
            if self.strike_at is None or now < self.strike_at:
                return
        pid = supervisor.states().get(stage, {}).get("pid")
        if not pid:
            return
        self.strike_at = None
        os.kill(pid, signal.SIGKILL)
        self.current = {
            "stage": stage,
            "pid": pid,
            "killed": time.monotonic(),
            "killed_boot": time.clock_gettime(time.CLOCK_BOOTTIME),
        }

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


def repeats_needed(cycle: workload.Cycle, kills: int, settle_s: float, expected_recovery_s: float = 8.0) -> int:
    """Cycles enough for every kill to land while there is still speech to type. A stage
    is back in 1-3 s on a quiet machine; twice that and more on a busy one, where a
    stream sized for the quiet case ran out before the last stage was killed."""
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
        stage: {
            "kills": len(times["ready"]),
            "kills_mid_utterance": times["busy"],
            "kill_to_respawn_s": summarize(times["respawn"], 2),
            "kill_to_ready_s": summarize(times["ready"], 2),
        }
        for stage, times in stages.items()
    }


def run(
    config: dict,
    recordings: list[Path],
    rounds: int,
    settle_s: float,
    work_dir: Path,
    gap_s: float,
    tail_s: float,
    seed: int,
    say=print,
) -> dict:
    cycle = workload.build_cycle(recordings, gap_s)
    order = kill_order(list(KILLABLE), rounds)
    repeats = repeats_needed(cycle, len(order), settle_s)
    stream = workload.write_stream(cycle, repeats, work_dir / "recovery.wav", tail_s)
    say(f"recovery: undisturbed reference ({repeats} cycles of {cycle.seconds:.1f} s)")
    reference = replay.run(copy.deepcopy(config), str(stream))
    say(f"recovery: {len(order)} kills ({rounds} per stage), replaying at real time")
    config = copy.deepcopy(config)
    schedule = KillSchedule(order, settle_s, random.Random(seed), config)
    try:
        state = replay.run(config, str(stream), realtime=True, observe=schedule)
    finally:
        schedule.close()
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
        "typed": [
            {key: row.get(key) for key in ("utt", "text", "typed_by", "vad_ns", "first_key_ns", "last_key_ns")}
            for row in rows
        ],
    }
