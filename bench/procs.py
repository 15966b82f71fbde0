"""What each stage process costs, read from /proc: CPU time (user + system, all
threads), resident memory (now, peak, anonymous versus file-backed, proportional) and
the cores it may run on. Parsing is separate from reading so it can be checked on
fixed text."""

import os
import resource
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STATUS_FIELDS = {
    "VmRSS": "rss",
    "VmHWM": "peak_rss",
    "RssAnon": "rss_anon",
    "RssFile": "rss_file",
    "Threads": "threads",
}


def parse_stat(text: str) -> dict:
    """CPU seconds, the core last run on and when the process started (seconds since
    boot, CLOCK_BOOTTIME), from /proc/PID/stat."""
    # The command name may hold spaces and parentheses: fields are counted after its ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return {
        "cpu_s": (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        "last_cpu": int(fields[36]),
        "started_s": int(fields[19]) / CLOCK_TICKS,
    }


def parse_status(text: str) -> dict:
    """Memory in bytes (and the thread count) from /proc/PID/status."""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            number = int(value.split()[0])
            found[STATUS_FIELDS[key]] = number if key == "Threads" else number * 1024
    return found


def parse_smaps_rollup(text: str) -> dict:
    """Proportional set size in bytes: pages shared between processes (a model file two
    stages map, libraries) counted once in total rather than once per process."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return {"pss": int(line.split()[1]) * 1024}
    return {}


def parse_proc_stat(text: str) -> dict:
    """Machine-wide busy and stolen CPU seconds from the `cpu` line of /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in text.split("\n", 1)[0].split()[1:9])
    return {"busy_s": (user + nice + system + irq + softirq) / CLOCK_TICKS, "steal_s": steal / CLOCK_TICKS}


def machine_reading() -> dict:
    """Busy and stolen CPU of the whole machine, and the CPU this process and its
    reaped descendants used (the stages are reaped by supervisord, which this
    process reaps), so what other processes took can be told apart."""
    with open("/proc/stat") as stat:
        reading = parse_proc_stat(stat.read())
    own = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    reading["own_s"] = sum(usage.ru_utime + usage.ru_stime for usage in own)
    reading["wall_s"] = time.monotonic()
    return reading


def foreign_load(before: dict, after: dict, cpus: int) -> dict:
    """What the rest of the machine took while the bench ran: a busy neighbour (or a
    hypervisor stealing time) makes every number here slower."""
    wall = after["wall_s"] - before["wall_s"]
    other = max(0.0, (after["busy_s"] - before["busy_s"]) - (after["own_s"] - before["own_s"]))
    steal = after["steal_s"] - before["steal_s"]
    capacity = wall * cpus or 1.0
    return {
        "other_processes_cpu_s": round(other, 1),
        "other_processes_share": round(other / capacity, 3),
        "stolen_cpu_s": round(steal, 1),
        "stolen_share": round(steal / capacity, 3),
    }


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (which holds nothing any more)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sample(pid: int) -> dict | None:
    """One reading of a process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/status") as status:
            reading = {**parse_stat(stat.read()), **parse_status(status.read())}
        reading["cores"] = sorted(os.sched_getaffinity(pid))
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            reading.update(parse_smaps_rollup(rollup.read()))
    except OSError:  # older kernels have no smaps_rollup: PSS is then left out
        pass
    return reading


@dataclass
class ProcessTrack:
    """Readings of one stage over a run. `baseline_cpu_s` is the CPU time when every
    stage had reported ready, so loading a model is kept apart from handling audio."""

    pid: int
    first: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)
    peak_rss: int = 0
    baseline_cpu_s: float | None = None
    pids: set = field(default_factory=set)

    def add(self, reading: dict) -> None:
        self.first = self.first or reading
        self.last = reading
        self.peak_rss = max(self.peak_rss, reading.get("peak_rss", 0))

    def summary(self) -> dict:
        last = self.last
        baseline = self.baseline_cpu_s if self.baseline_cpu_s is not None else 0.0
        return {
            "pid": self.pid,
            "restarts": len(self.pids) - 1,
            "cpu_s": round(last.get("cpu_s", 0.0), 2),
            "cpu_after_ready_s": round(max(0.0, last.get("cpu_s", 0.0) - baseline), 2),
            "peak_rss": self.peak_rss,
            "rss": last.get("rss", 0),
            "rss_anon": last.get("rss_anon", 0),
            "rss_file": last.get("rss_file", 0),
            "pss": last.get("pss", 0),
            "threads": last.get("threads", 0),
            "cores": last.get("cores", []),
            "last_cpu": last.get("last_cpu", 0),
        }


class Sampler:
    """Follows a set of named processes; a name whose pid changes (a restart) keeps its
    readings from the newest process."""

    def __init__(self):
        self.tracks: dict[str, ProcessTrack] = {}

    def take(self, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            if not pid:
                continue
            reading = sample(pid)
            if reading is None:
                continue
            track = self.tracks.get(name)
            if track is None or track.pid != pid:
                seen = track.pids if track else set()
                track = self.tracks[name] = ProcessTrack(pid, pids=seen | {pid})
            track.add(reading)

    def mark_baseline(self) -> None:
        for track in self.tracks.values():
            if track.baseline_cpu_s is None:
                track.baseline_cpu_s = track.last.get("cpu_s", 0.0)

    def summary(self) -> dict:
        return {name: track.summary() for name, track in sorted(self.tracks.items())}
