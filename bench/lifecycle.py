"""What `voxkey up` costs while nobody speaks, and how fast it stops: `voxkey bench
--lifecycle` (alone: `python -m bench.lifecycle`).

`voxkey up` runs on a real microphone (a PulseAudio source that hears silence: see
bench/sessions.py) and types into a file. Once every stage reports ready and a few
seconds have settled, the CPU each process uses is read from /proc over a window while
listening to silence, then over a window paused (`voxkey listen off`), in percent of
one core: every stage, supervisord and the `up` command itself. Then `up` is stopped
with SIGTERM, and started again for SIGHUP and for SIGINT: each stop is timed from the
signal until every process is gone and the microphone is released. With `--runs N`
the whole is done N times and each process's share is the median of its N (other work
on the machine moves single runs by tenths of a percent); every run is kept in the
JSON. Writes bench/results/<timestamp>-lifecycle.json and .md.
"""

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bench import procs, report, sessions
from bus import wiring
from bus.peer import Peer
from voxkey import settings as configured
from voxkey.supervise import Supervisor

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")
SETTLE_S = 5.0  # after ready: imports finished, first heartbeats exchanged


class Up:
    """One `voxkey up` on the microphone, in its own run directory."""

    def __init__(self, work: Path, settings: list[str]):
        self.run_dir = Path(tempfile.mkdtemp(prefix="voxkey-lifecycle-", dir=work))
        overrides = [f"bus.run_dir={self.run_dir}", *settings]
        self.log = open(self.run_dir.parent / f"{self.run_dir.name}.up.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voxkey.cli",
                "up",
                "--sink",
                f"file:{self.run_dir / 'typed.txt'}",
                *[arg for setting in overrides for arg in ("--set", setting)],
            ],
            cwd=REPO,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        self.config = configured.load(overrides=overrides)
        self.supervisor = Supervisor(self.run_dir, self.run_dir / "run.toml")

    def wait_ready(self, seconds: float = 180) -> None:
        watcher = Peer("bench", self.config, list(wiring.STAGES), [], structlog.get_logger())
        try:

            def all_ready():
                watcher.receive(100)
                if self.process.poll() is not None:
                    raise sessions.SessionError(f"voxkey up exited with {self.process.returncode}; see {self.log.name}")
                return all(beat is not None and beat.ready for beat in watcher.heard.values())

            sessions.wait_until(all_ready, seconds, "every stage ready")
        finally:
            watcher.close()

    def processes(self) -> dict[str, int]:
        """name -> pid of every process of this voxkey: the stages, supervisord, up."""
        pids = {name: info["pid"] for name, info in self.supervisor.states().items() if info["pid"]}
        pids["supervisord"] = self.supervisor.rpc.supervisor.getPID()
        pids["up"] = self.process.pid
        return pids

    def listen(self, how: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "voxkey.cli", "listen", how, "--set", f"bus.run_dir={self.run_dir}"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )

    def stop(self, signal_name: str, seconds: float = 60) -> float | None:
        """Send the signal; seconds until every process is gone and nothing records,
        or None if that did not happen within `seconds` (then up is killed outright)."""
        pids = self.processes()
        started = time.monotonic()
        self.process.send_signal(getattr(signal, signal_name))

        def all_gone():
            self.process.poll()  # reaps up, our child
            return not any(procs.alive(pid) for pid in pids.values()) and sessions.recording_clients() == 0

        try:
            sessions.wait_until(all_gone, seconds, f"every process gone after {signal_name}")
            return time.monotonic() - started
        except sessions.SessionError:
            self.process.kill()  # its stages follow it (bus/lifetime.py)
            sessions.wait_until(all_gone, seconds, "every process gone after SIGKILL")
            return None
        finally:
            self.log.close()


def cpu_shares(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Percent of one core each process used over the next `seconds`."""
    before = {name: procs.sample(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    after = {name: procs.sample(pid) for name, pid in pids.items()}
    wall = time.monotonic() - started
    return {
        name: round(100 * (after[name]["cpu_s"] - before[name]["cpu_s"]) / wall, 2)
        for name in pids
        if before[name] and after[name]
    }


def run(idle_s: float, settings: list[str], say) -> dict:
    results = {"idle_window_s": idle_s, "listening": {}, "paused": {}, "stop_s": {}}
    with sessions.microphone(), tempfile.TemporaryDirectory(prefix="voxkey-bench-") as work:
        for index, signal_name in enumerate(SIGNALS):
            say(f"bench: voxkey up on a silent microphone, to be stopped by {signal_name}")
            up = Up(Path(work), settings)
            up.wait_ready()
            if index == 0:
                time.sleep(SETTLE_S)
                say(f"bench: CPU over {idle_s:.0f} s listening to silence")
                results["listening"] = cpu_shares(up.processes(), idle_s)
                up.listen("off")
                time.sleep(SETTLE_S)
                say(f"bench: CPU over {idle_s:.0f} s paused")
                results["paused"] = cpu_shares(up.processes(), idle_s)
            took = up.stop(signal_name)
            results["stop_s"][signal_name] = round(took, 3) if took is not None else None
    for window in ("listening", "paused"):
        results[f"{window}_total"] = round(sum(results[window].values()), 2)
    return results


def medians(runs: list[dict]) -> dict:
    """One result of several runs: per process and window, the median share; the
    totals and stop times too, medians of the runs' own."""
    merged = {"idle_window_s": runs[0]["idle_window_s"], "runs": runs}
    for window in ("listening", "paused"):
        names = sorted({name for run in runs for name in run[window]}, key=_order)
        merged[window] = {
            name: round(statistics.median(run[window][name] for run in runs if name in run[window]), 2)
            for name in names
        }
        merged[f"{window}_total"] = round(statistics.median(run[f"{window}_total"] for run in runs), 2)
    merged["stop_s"] = {}
    for name in SIGNALS:
        took = [run["stop_s"].get(name) for run in runs]
        merged["stop_s"][name] = None if None in took else round(statistics.median(took), 3)
    return merged


def markdown(results: dict) -> str:
    names = sorted(set(results["listening"]) | set(results["paused"]), key=_order)
    runs = len(results.get("runs", [])) or 1
    lines = [
        "# voxkey lifecycle",
        "",
        f"{results['host']['timestamp']}, {results['host']['cpus']} CPUs, {results['host']['machine']}.",
        "",
        f"## Idle CPU (% of one core, {results['idle_window_s']:.0f} s windows"
        + (f", medians of {runs} runs)" if runs > 1 else ")"),
        "",
        "| process | listening to silence | paused |",
        "|---|---:|---:|",
        *[f"| {name} | {results['listening'].get(name, '-')} | {results['paused'].get(name, '-')} |" for name in names],
        f"| **total** | **{results['listening_total']}** | **{results['paused_total']}** |",
        "",
        "## Stop time (signal to every process gone and the microphone released)",
        "",
        "| signal | seconds |",
        "|---|---:|",
        *[
            f"| {name} | {'did not stop within 60 s' if seconds is None else seconds} |"
            for name, seconds in results["stop_s"].items()
        ],
    ]
    return "\n".join(lines) + "\n"


def _order(name: str) -> int:
    order = [*wiring.STAGES, "supervisord", "up"]
    return order.index(name) if name in order else len(order)


def main(argv: list[str] | None = None, say=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0, metavar="S")
    parser.add_argument("--runs", type=int, default=1, metavar="N", help="medians of N runs")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    return measure(
        args.idle_seconds,
        args.set,
        Path(args.out),
        say or (lambda m: print(m, file=sys.stderr, flush=True)),
        runs=max(1, args.runs),
    )


def measure(idle_s: float, settings: list[str], out: Path, say, runs: int = 1) -> int:
    missing = sessions.missing_tools("pulseaudio", "pactl")
    if missing:
        say(f"voxkey bench: {', '.join(missing)} not installed: run ./install")
        return 1
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {
        "schema": report.SCHEMA,
        "host": {"timestamp": stamp, "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    try:
        done = [run(idle_s, settings, say) for _ in range(runs)]
        results.update(done[0] if runs == 1 else medians(done))
    except sessions.SessionError as error:
        say(f"voxkey bench: {error}")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    summary = markdown(results)
    (out / f"{stamp}-lifecycle.md").write_text(summary)
    (out / f"{stamp}-lifecycle.json").write_text(json.dumps(results, indent=2) + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
