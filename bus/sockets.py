"""Where sockets live and how they are wired.

Direct wiring: every participant binds one PUB socket and subscribes to the
publishers it reads from (see README, "How it works"). Local endpoints are ipc://
sockets inside a run directory that only its owner may open.
"""

import os
import stat
from pathlib import Path

import zmq

from bus.config import ConfigError


class InsecureRunDir(ConfigError):
    pass


def default_run_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime, "voxkey") if runtime else Path(f"/tmp/voxkey-{os.getuid()}")


def run_dir(config: dict) -> Path:
    return Path(config["bus"]["run_dir"] or default_run_dir())


def make_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private_dir(path)
    return path


def check_private_dir(path: Path) -> None:
    """Anyone who can open the socket directory can make this computer type."""
    info = path.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise InsecureRunDir(
            f"socket directory {path} is mode {stat.S_IMODE(info.st_mode):o} owned by uid "
            f"{info.st_uid}: it must be 0700 and yours (chmod 700 {path})"
        )


def endpoint(config: dict, name: str) -> str:
    section = config.get("stages", {}).get(name, {})
    return section.get("endpoint") or f"ipc://{run_dir(config) / name}.sock"


def control_endpoint(config: dict, name: str) -> str:
    """Where a stage answers commands (`voxkey mode`): request/reply, local only."""
    return f"ipc://{run_dir(config) / name}.control"


def publisher(context: zmq.Context, address: str) -> zmq.Socket:
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 1000)
    # Audio and tokens must not be dropped by a briefly slow subscriber.
    socket.setsockopt(zmq.SNDHWM, 100_000)
    _check_transport(address)
    socket.bind(address)
    return socket


def subscriber(context: zmq.Context, addresses: list[str], topics: list[str]) -> zmq.Socket:
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, 100_000)
    for topic in topics:
        socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
    for address in addresses:
        _check_transport(address)
        socket.connect(address)
    return socket


def _check_transport(address: str) -> None:
    if not address.startswith(("ipc://", "inproc://")):
        raise ConfigError(
            f"endpoint {address}: only local ipc:// sockets are supported; tcp:// needs CURVE keys"
        )
