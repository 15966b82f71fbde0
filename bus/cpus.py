"""The CPU plan: how many threads each engine takes and how its threads wait for work,
so that the engines, each other and the user's other programs never make a spin-waiting
thread pool wait on a thread the kernel has put aside.

Both engines are OpenMP programs (CTranslate2 for Whisper; llama.cpp built with
libgomp, whose every barrier between two steps of a token is an OpenMP barrier). By
default libgomp spins 300,000 times at a barrier before it sleeps, and cannot see other
processes: with more runnable threads than cores, a barrier waits a whole scheduler
slice for a partner thread that is not running, hundreds of times a token. Measured
here (SmolLM2, 2 threads on 2 cores, beside one busy process): 1.1 tokens/s instead of
~50, and 0.4 beside two; with `OMP_WAIT_POLICY=PASSIVE` (threads sleep at once) 34
and 13. A bounded spin (GOMP_SPINCOUNT=10000) still collapsed (1.6). bench/threads.py
measures each choice, quiet and beside busy processes (`voxkey bench --threads`).

Thread counts when a stage's `threads` is 0: recognition takes every core the stage may
run on (it is what the user waits for after every sentence); a model takes half of
them (at least one), leaving the rest to recognition, which runs beside an answer
being generated (the next sentence said while the last answer is typed), and to the
light stages. A prompt is evaluated (`batch_threads`) on every core: it is short, and
with passive threads it beat half the cores quiet and beside busy processes alike.

Measured here (`voxkey bench --threads`, 2 cores, SmolLM2 chat request, medians of 3;
quiet / one busy process / two): 2 threads spinning (the old default) first token
170 / 588 / 730 ms, 71 / 19 / 17 tokens/s; 1 thread decoding and 2 evaluating,
passive (the plan) 163 / 260 / 374 ms, 40 / 50 / 28 tokens/s. The plan's quiet cost
is decoding speed (40 tokens/s instead of 71: an 80-token answer ends ~0.9 s later);
beside one busy process it is 2.6 times faster. Whisper: passive costs nothing quiet
(jfk.flac 572 ms against 569) and 2 threads beat 1 in every arm.
"""

import os
from dataclasses import dataclass

from bus.config import WAIT_POLICIES

RECOGNISER = "asr"
GENERATORS = ("instruct", "thinking")


@dataclass(frozen=True)
class EngineThreads:
    threads: int  # Whisper's recognition, or a model's decoding of one token
    batch: int  # a model's prompt evaluation (llama.cpp's n_threads_batch)


def engine_threads(stage: str, cores: int, threads: int = 0, batch: int = 0) -> EngineThreads:
    """The plan for `stage` on `cores` cores, unless the settings give the counts."""
    planned = max(1, cores // 2) if stage in GENERATORS else max(1, cores)
    chosen = int(threads) or planned
    return EngineThreads(chosen, int(batch) or max(1, cores))


def for_stage(stage: str, settings: dict, cores: int | None = None) -> EngineThreads:
    """The plan for a stage from its settings (`threads`, `batch_threads`, `cpus`), on the
    cores it is pinned to, else every core this process may use."""
    if cores is None:
        cores = len(settings.get("cpus") or os.sched_getaffinity(0))
    return engine_threads(stage, cores, settings.get("threads") or 0, settings.get("batch_threads") or 0)


def wait_environment(policy: str) -> dict[str, str]:
    """What the OpenMP runtime must find in the environment for `policy`: it reads it
    once, when the engine's library is loaded."""
    if policy not in WAIT_POLICIES:
        raise ValueError(f"wait policy {policy!r}: use one of {', '.join(WAIT_POLICIES)}")
    return {} if policy == "default" else {"OMP_WAIT_POLICY": policy.upper()}


def apply_wait_policy(policy: str) -> None:
    """Set the policy for the engine this process is about to load. An OMP_WAIT_POLICY
    the user exported wins: it is their machine."""
    for name, value in wait_environment(policy).items():
        os.environ.setdefault(name, value)
