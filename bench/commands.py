"""How long a key binding's command takes: `voxkey bench --commands` (alone: `python -m
bench.commands`).

A real `voxkey up` runs on a silent microphone (bench/sessions.py) and types into a
file; each command is then run COMMAND_RUNS times through the installed `voxkey`
script, as a key binding runs it, and timed from its start to its exit, with its answer
from the running stages. Beside them: the interpreter's own start (`python -c pass`),
the floor no command can go under, and `voxkey --help`, which loads every command.
Reports the median, fastest and slowest of each, and writes
bench/results/<timestamp>-commands.json and .md.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report, sessions
from bench.lifecycle import Up

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND_RUNS = 20  # even
# Listening ends as it began: a toggle runs an even number of times, hold before release.
COMMANDS = (
    ("listen toggle",),
    ("listen hold", "listen release"),
    ("mode dictate",),
    ("cancel",),
    ("status",),
)


def timed(argv: list[str]) -> tuple[float, int]:
    """Seconds from starting `argv` to its exit, and its exit status."""
    started = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.monotonic() - started, done.returncode


def row(name: str, seconds: list[float], failed: int) -> dict:
    return {
        "command": name,
        "runs": len(seconds),
        "failed": failed,
        "median_ms": statistics.median(seconds) * 1000,
        "fastest_ms": min(seconds) * 1000,
        "slowest_ms": max(seconds) * 1000,
    }


def measure_each(argvs: dict[str, list[str]], runs: int, say) -> list[dict]:
    """Every command `runs` times, interleaved (so a busy moment falls on all alike)."""
    seconds: dict[str, list[float]] = {name: [] for name in argvs}
    failed = dict.fromkeys(argvs, 0)
    for _ in range(runs):
        for name, argv in argvs.items():
            took, status = timed(argv)
            seconds[name].append(took)
            failed[name] += status != 0
    rows = [row(name, seconds[name], failed[name]) for name in argvs]
    for measured in rows:
        say(f"bench: voxkey {measured['command']}: median {measured['median_ms']:.0f} ms, {measured['failed']} failed")
    return rows


def command_lines(voxkey: str, run_dir: Path) -> dict[str, list[str]]:
    at = ["--set", f"bus.run_dir={run_dir}"]
    lines = {"python -c pass": [sys.executable, "-c", "pass"], "--help": [voxkey, "--help"]}
    for group in COMMANDS:
        for command in group:
            lines[command] = [voxkey, *command.split(), *at]
    return lines


def run(runs: int = COMMAND_RUNS, out: Path = RESULTS, say=print) -> dict:
    voxkey = str(Path(sys.executable).with_name("voxkey"))
    work = Path(tempfile.mkdtemp(prefix="voxkey-commands-"))
    with sessions.microphone():
        up = Up(work, ["cli.notify=false"])
        try:
            up.wait_ready()
            say(f"bench: voxkey up ready; each command {runs} times")
            rows = measure_each(command_lines(voxkey, up.run_dir), runs, say)
        finally:
            up.stop("SIGTERM")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {
        "schema": report.SCHEMA,
        "timestamp": stamp,
        "host": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": os.getloadavg()[0],  # the last minute's, as measured
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}-commands.md").write_text(markdown(results))
    (out / f"{stamp}-commands.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def markdown(results: dict) -> str:
    rows = [
        [
            r["command"],
            f"{r['median_ms']:.0f}",
            f"{r['fastest_ms']:.0f}",
            f"{r['slowest_ms']:.0f}",
            f"{r['failed']}/{r['runs']}",
        ]
        for r in results["rows"]
    ]
    notes = [
        f"Each command run {results['rows'][0]['runs']} times against a running `voxkey up`, interleaved, on "
        f"{results['host']} (load average {results['load']:.2f}); from its start to its exit, answered."
    ]
    return "\n".join(
        report.section(
            "Command latency",
            ["command", "median ms", "fastest ms", "slowest ms", "failed"],
            rows,
            notes,
            level=1,
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.commands", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=COMMAND_RUNS)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    sys.exit(
        sessions.run_on_sessions(lambda say: run(args.runs, Path(args.out), say), markdown, sessions.say_on_stderr)
    )


if __name__ == "__main__":
    main()
