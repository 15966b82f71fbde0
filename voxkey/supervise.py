"""Running the stages under supervisord: start, watch, stop.

Used by the CLI and the benchmarks alike, so both run exactly the same processes.
"""

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from bus import wiring
from bus.lifetime import stop_when_parent_dies
from bus.stage import CANNOT_RUN

REPO = Path(__file__).resolve().parent.parent
SUPERVISORD_CONF = REPO / "supervisord.conf"


class Supervisor:
    def __init__(self, run_dir: Path, config_path: Path, stages: tuple[str, ...] = wiring.STAGES):
        self.run_dir = run_dir
        self.config_path = config_path
        self.stages = stages  # those this host runs; another host runs the rest
        self.process: subprocess.Popen | None = None
        self._rpc = None
        self.stage_pids: set[int] = set()  # every stage process seen, to check none is left

    def environment(self) -> dict[str, str]:
        """What supervisord.conf reads from its environment."""
        return dict(
            os.environ,
            VOXKEY_RUN_DIR=str(self.run_dir),
            VOXKEY_CONFIG=str(self.config_path),
            VOXKEY_PYTHON=sys.executable,
            PYTHONUNBUFFERED="1",
            **{f"VOXKEY_START_{stage.upper()}": str(stage in self.stages).lower() for stage in wiring.STAGES},
        )

    def start(self) -> None:
        # Only what supervisord says before its own (rotated) log is open: it runs `silent`.
        self.log = open(self.run_dir / "supervisord.out", "ab")
        cli = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(SUPERVISORD_CONF)],
            env=self.environment(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: stop_when_parent_dies(cli),  # its stages do the same with it
        )

    @property
    def rpc(self):
        if self._rpc is None:
            transport = SupervisorTransport(None, None, f"unix://{self.run_dir / 'supervisor.sock'}")
            self._rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return self._rpc

    def states(self) -> dict[str, dict]:
        """name -> supervisord's process info; empty while supervisord is not answering yet."""
        try:
            states = {info["name"]: info for info in self.rpc.supervisor.getAllProcessInfo()}
            self.stage_pids |= {info["pid"] for info in states.values() if info["pid"]}
            return states
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            self._rpc = None  # the transport keeps a broken connection: start afresh
            return {}

    def failed(self, states: dict[str, dict] | None = None) -> dict[str, str]:
        """Stages that cannot run, each with the last error line of its log: supervisord
        gave up on it, or it exited saying it cannot run as configured."""
        states = self.states() if states is None else states
        return {
            name: last_error(self.run_dir / f"{name}.log")
            for name, info in states.items()
            if name in self.stages and gave_up(info)
        }

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop supervisord and with it every stage; then make sure of it: a stage that
        outlived a supervisord killed outright is stopped here too."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            self.log.close()
        stop_processes(self.left_behind(), timeout=5.0)

    def left_behind(self) -> list[int]:
        """Stage processes seen under this supervisord that still run."""
        return [pid for pid in sorted(self.stage_pids) if is_stage_process(pid)]


def is_stage_process(pid: int) -> bool:
    # By its command line, not just its pid: a pid is reused once its process is gone.
    try:
        return b"stages." in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_processes(pids: list[int], timeout: float) -> None:
    """SIGTERM, then SIGKILL for any still there after `timeout`."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if is_stage_process(pid)]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def gave_up(info: dict) -> bool:
    if info["statename"] in ("FATAL", "BACKOFF"):
        return True
    return info["statename"] == "EXITED" and info.get("exitstatus") == CANNOT_RUN


@dataclass
class CrashLoops:
    """Stages crashing again and again: `limit` unexpected exits within `window_s`.
    supervisord restarts a stage that dies after its first second without limit and
    without a word; this notices. A swap's restart or a stage that exits because it
    cannot run as configured is not a crash. Pure: told each crash and its time."""

    limit: int = 3
    window_s: float = 60.0
    crashes: dict = field(default_factory=dict)  # stage -> times of its recent crashes
    looping: set = field(default_factory=set)

    def crashed(self, stage: str, now: float) -> int:
        """Count one crash; returns how many there were in the window if this one makes
        the stage a crash loop (said once per loop), else 0."""
        recent = [moment for moment in self.crashes.get(stage, []) if now - moment < self.window_s] + [now]
        self.crashes[stage] = recent
        if len(recent) < self.limit:
            self.looping.discard(stage)
            return 0
        if stage in self.looping:
            return 0
        self.looping.add(stage)
        return len(recent)


# supervisord's log line for a process that ended on its own, e.g.
# "2026-11-24 06:40:01,234 WARN exited: asr (terminated by SIGKILL; not expected)"
UNEXPECTED_EXIT = re.compile(r" exited: (\S+) \((.*); not expected\)")


class Health:
    """What went wrong with the stages since the last look, each problem said once in
    one line: supervisord gone, a stage that cannot run, a stage crashing in a loop.
    Crashes are read from supervisord's log as it grows (from its size at creation:
    the run directory may hold earlier runs' logs), across its rotation (supervisord.conf:
    `logfile_maxbytes`): a log that is another file than at the last look was renamed
    supervisord.log.1, and the rest of it is read there first. (Rotated twice between
    two looks, a second apart, the middle file would be missed: 1 MB of state changes.)"""

    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor
        self.loops = CrashLoops()
        self.told: set[str] = set()  # stages said not to run, until they run again
        self.asked = False  # whether supervisord was asked for its processes' states yet
        self.log_path = supervisor.run_dir / "supervisord.log"
        self.log_file, self.log_read = _identity(self.log_path), 0
        if self.log_file is not None:
            self.log_read = self.log_path.stat().st_size

    def problems(self, now: float) -> list[str]:
        if not self.supervisor.alive():
            return [f"supervisord exited unexpectedly; see {self.supervisor.run_dir / 'supervisord.out'}"]
        lines = self._new_log_lines()
        # supervisord logs every change of a stage's state (loglevel info): with nothing
        # new in its log there is nothing new to ask it, and an idle `up` asks nothing.
        if not lines and self.asked:
            return []
        self.asked = True
        failed = self.supervisor.failed(self.supervisor.states())
        found = [f"stage {name} cannot start: {reason}" for name, reason in failed.items() if name not in self.told]
        self.told = set(failed)
        for stage, how in _crashes(lines):
            count = self.loops.crashed(stage, now)
            if count:
                reason = last_error(self.supervisor.run_dir / f"{stage}.log")
                found.append(
                    f"stage {stage} keeps crashing ({count} crashes in {self.loops.window_s:.0f} s, "
                    f"last {how}): {reason}"
                )
        return found

    def _new_log_lines(self) -> list[str]:
        """The complete lines supervisord logged since the last look."""
        current, earlier = _identity(self.log_path), b""
        if current is None:
            return []
        if self.log_file is not None and current != self.log_file:  # rotated since the last look
            earlier = _read_from(self.log_path.with_name(self.log_path.name + ".1"), self.log_read)
            self.log_read = 0
        self.log_file = current
        text = _read_from(self.log_path, self.log_read)
        complete = text[: text.rfind(b"\n") + 1]  # a line still being written waits
        self.log_read += len(complete)
        return (earlier + complete).decode(errors="replace").splitlines()


def _crashes(lines: list[str]) -> list[tuple[str, str]]:
    """(stage, how) for each unexpected exit of a stage in supervisord's log lines."""
    return [match.groups() for match in map(UNEXPECTED_EXIT.search, lines) if match and match.group(1) in wiring.STAGES]


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file `path` is (device, inode): a rotated log is a new file under the old name."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read()
    except OSError:
        return b""


def last_error(log_path: Path) -> str:
    """The most telling line of a stage's log, from its latest run: the reason it gave
    for not running, else its last logged error, else the exception that ended it, else
    how supervisord saw it end (killed by a signal says nothing in its own log)."""
    lines = _lines(log_path)
    starts = [index for index, line in enumerate(lines) if '"event": "starting"' in line]
    lines = lines[starts[-1] :] if starts else lines
    plain = [line for line in lines if line.startswith("voxkey ")]
    errors = [json_event(line) for line in lines if '"level": "error"' in line]
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    name = log_path.stem
    ended = [
        line.split(" ", 3)[-1] for line in _lines(log_path.parent / "supervisord.log") if f" exited: {name} (" in line
    ]
    return (plain or errors or raised or ended or lines[-1:] or ["(empty log)"])[-1]


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return []


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")


def json_event(line: str) -> str:
    """A structlog JSON line as "event (detail)", readable in one line."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    event = str(record.get("event", line))
    detail = record.get("detail") or str(record.get("exception", "")).strip().rpartition("\n")[2]
    return f"{event} ({detail})" if detail else event
