"""Running the stages under supervisord: start, watch, stop.

Used by the CLI and the benchmarks alike, so both run exactly the same processes.
"""

import ctypes
import http.client
import os
import signal
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from bus import config as configuration

REPO = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1  # linux/prctl.h
SUPERVISORD_CONF = REPO / "supervisord.conf"


class Supervisor:
    def __init__(self, run_dir: Path, config_path: Path):
        self.run_dir = run_dir
        self.config_path = config_path
        self.process: subprocess.Popen | None = None
        self._rpc = None

    def start(self) -> None:
        env = dict(
            os.environ,
            VOXKEY_RUN_DIR=str(self.run_dir),
            VOXKEY_CONFIG=str(self.config_path),
            VOXKEY_PYTHON=sys.executable,
            PYTHONUNBUFFERED="1",
        )
        self.log = open(self.run_dir / "supervisord.out", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(SUPERVISORD_CONF)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stop_when_parent_dies,
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
            return {info["name"]: info for info in self.rpc.supervisor.getAllProcessInfo()}
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            self._rpc = None  # the transport keeps a broken connection: start afresh
            return {}

    def failed(self) -> dict[str, str]:
        """Stages supervisord gave up on, each with the last error line of its log."""
        return {
            name: last_error(self.run_dir / f"{name}.log")
            for name, info in self.states().items()
            if info["statename"] in ("FATAL", "BACKOFF") and name in configuration.STAGES
        }

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def stop_when_parent_dies() -> None:
    """In the child, before supervisord starts: the kernel sends it SIGTERM when the
    command that started it dies, even by SIGKILL, so its stages never outlive it
    (holding the microphone, typing)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def last_error(log_path: Path) -> str:
    """The most telling line of a stage's log: its last error, else its last line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    plain = [line for line in lines if line.startswith("voxkey ")]
    errors = [line for line in lines if '"level": "error"' in line]
    return (plain or errors or lines or ["(empty log)"])[-1]
