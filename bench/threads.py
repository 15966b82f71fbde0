"""`voxkey bench --threads`: each engine under each CPU-plan choice (thread counts and
OpenMP wait policy, bus/cpus.py), quiet and beside busy processes, so a default is
chosen from what it costs on a quiet machine and what it saves on a busy one.

Every measurement runs in a fresh process (`python -m bench.threads --one ...`): the
OpenMP runtime reads its wait policy once, when the engine's library loads. The model
answers one chat request (the stage's prompt layout and sampling, seeded), timed as the
stage times it: time to first token from the call and tokens/s from the first token to
the last. Whisper recognises jfk.flac (11 s) and dictate_report.wav (3.6 s) with the
asr stage's own decoding call. Each figure is the median of the rounds; the arms
alternate within a round, so a busy moment weighs on all alike.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import hogs, procs
from bench.stats import percentile
from bus import cpus as cpu_plan

ROUNDS = 3
REQUEST = "Give me a synonym for happy, and say where the word comes from."
RECORDINGS = ("jfk.flac", "dictate_report.wav")


@dataclass(frozen=True)
class Choice:
    stage: str  # "asr" or "instruct"
    threads: int
    batch: int
    wait: str

    @property
    def label(self) -> str:
        batch = f"/{self.batch}" if self.batch != self.threads else ""
        return f"{self.threads}{batch} thread(s), wait {self.wait}"


def choices(cores: int) -> list[Choice]:
    """Every engine with every core, with half of them, spinning (libgomp's default) or
    not (passive); a model also decoding on half and evaluating its prompt on all."""
    counts = sorted({cores, max(1, cores // 2)}, reverse=True)
    waits = ("default", "passive")
    found = [Choice(stage, n, n, wait) for stage in ("asr", "instruct") for n in counts for wait in waits]
    if len(counts) > 1:
        found.append(Choice("instruct", counts[1], counts[0], "passive"))
    return found


def measure_one(config: dict, choice: Choice, audio_dir: Path) -> dict:
    """In this process (the wait policy is already in its environment): the engine's figures."""
    from bench import raw
    from stages.capture import audio

    settings = {
        **config["stages"][choice.stage],
        "threads": choice.threads,
        "batch_threads": choice.batch,
        "wait": choice.wait,
    }
    if choice.stage == "asr":
        whisper = raw.Whisper(settings)
        found = {}
        for name in RECORDINGS:
            samples = audio.read_all(audio_dir / name)
            found[f"{Path(name).stem}_ms"] = percentile([whisper.transcribe(samples)[0] for _ in range(3)], 50)
        return found
    model = raw.Model(settings, choice.stage)
    runs = []
    for _ in range(3):
        model.fresh("chat", warm=True)
        runs.append(model.generate("threads-bench", "chat", REQUEST))
    return {key: percentile([run[key] for run in runs], 50) for key in ("ttft_ms", "tokens_per_s", "total_ms")}


def run_one(choice: Choice, overrides: list[str]) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    environment.update(cpu_plan.wait_environment(choice.wait))
    command = [sys.executable, "-m", "bench.threads", "--one", json.dumps(vars(choice))]
    for item in overrides:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"bench.threads --one {choice.label}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def medians(rows: list[dict]) -> dict:
    return {key: round(percentile([row[key] for row in rows], 50), 1) for key in rows[0]}


def measure(config: dict, audio_dir: Path, out_dir: Path, say, overrides: list[str] = ()) -> dict:
    cores = len(os.sched_getaffinity(0))
    arms = hogs.counts(cores)
    found: dict[tuple[str, str], list[dict]] = {}
    before = procs.machine_reading()
    for round_number in range(ROUNDS):
        for arm, count in arms.items():
            with hogs.hogs(count):
                for choice in choices(cores):
                    say(f"threads: round {round_number + 1}/{ROUNDS}, {arm}: {choice.stage} {choice.label}")
                    found.setdefault((choice.label + "|" + choice.stage, arm), []).append(run_one(choice, overrides))
    results = {
        "cores": cores,
        "rounds": ROUNDS,
        "arms": arms,
        "load": procs.foreign_load(before, procs.machine_reading(), cores),
        "rows": [
            {"choice": key.split("|")[0], "stage": key.split("|")[1], "arm": arm, **medians(rows)}
            for (key, arm), rows in found.items()
        ],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"{stamp}-threads.json").write_text(json.dumps(results, indent=1))
    (out_dir / f"{stamp}-threads.md").write_text(markdown(results))
    return results


def markdown(results: dict) -> str:
    arms = list(results["arms"])
    lines = [
        f"## Engines by CPU-plan choice ({results['cores']} cores, medians of {results['rounds']} rounds)",
        "",
    ]
    for stage, keys in (("asr", ("jfk_ms", "dictate_report_ms")), ("instruct", ("ttft_ms", "tokens_per_s"))):
        lines += [
            f"| {stage} choice | " + " | ".join(f"{key} {arm}" for arm in arms for key in keys) + " |",
            "|---|" + "---|" * (len(arms) * len(keys)),
        ]
        table = {(row["choice"], row["arm"]): row for row in results["rows"] if row["stage"] == stage}
        for choice in dict.fromkeys(choice for choice, _ in table):
            cells = [str(table.get((choice, arm), {}).get(key, "-")) for arm in arms for key in keys]
            lines.append(f"| {choice} | " + " | ".join(cells) + " |")
        lines.append("")
    load = results["load"]
    lines.append(f"Other load while it ran: {load}. Busy processes: {results['arms']}.")
    return "\n".join(lines)


def main() -> None:
    from bus import config as configuration

    parser = argparse.ArgumentParser(prog="python -m bench.threads")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    config = configuration.load(None, args.set)
    audio_dir = Path(__file__).resolve().parent.parent / "tests" / "audio"
    if args.one:
        print(json.dumps(measure_one(config, Choice(**json.loads(args.one)), audio_dir)))
        return
    print(markdown(measure(config, audio_dir, Path(__file__).parent / "results", print, args.set)))


if __name__ == "__main__":
    main()
