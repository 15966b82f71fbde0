"""Where sockets live and how they are wired.

Direct wiring: every participant binds one PUB socket and subscribes to the
publishers it reads from (see README, "How it works"). Local endpoints are ipc://
sockets inside a run directory that only its owner may open; a tcp:// endpoint is
allowed only with CURVE keys (`[bus] curve_dir`, see bus/curve.py): the publisher is
the CURVE server and lets in only authorized subscribers.
"""

import os
import stat
from pathlib import Path

import zmq

from bus import curve
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


def check_private_dir(path: Path, what: str = "socket directory") -> None:
    """Anyone who can open the socket directory can make this computer type. A symlink
    is refused: in a shared /tmp, someone else could point it at a directory of ours."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise InsecureRunDir(f"{what} {path} does not exist (create it with: mkdir -m 700 {path})") from None
    if stat.S_ISLNK(info.st_mode):
        raise InsecureRunDir(
            f"{what} {path} is a symbolic link: remove it, or set [bus] run_dir to a real directory of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid():
        raise InsecureRunDir(f"{what} {path} is owned by uid {info.st_uid}, not you: use a directory of your own")
    if mode & 0o077:
        raise InsecureRunDir(f"{what} {path} is mode {mode:o}: others can open it (chmod 700 {path})")


def link_timeout_s(config: dict) -> float:
    return float(config["bus"].get("link_timeout_s") or 0)


def endpoint(config: dict, name: str, keys: "curve.Keys | None" = None) -> str:
    """Where `name` publishes: set by hand, derived from which host runs it
    (bus/placement.py, given the key directory's `keys`), or ipc:// in the run directory."""
    if keys is not None or config.get("placement", {}).get("host"):
        from bus import placement  # only a pipeline on tcp:// needs the wiring here

        derived = placement.endpoint(config, name, keys if keys is not None else placement.keys_of(config))
    else:
        derived = config.get("stages", {}).get(name, {}).get("endpoint")
    return derived or f"ipc://{run_dir(config) / name}.sock"


def control_endpoint(config: dict, name: str) -> str:
    """Where a stage answers commands (`voxkey mode`): request/reply, local only."""
    return f"ipc://{run_dir(config) / name}.control"


def link_options(timeout_s: float) -> dict[int, object]:
    """ZeroMQ's own heartbeats on a tcp:// connection: one that hears nothing for
    `timeout_s` (a network link gone) is dropped and made again once the other end
    answers. What it held is lost, and found missing by the peers' accounting
    (bus/peer.py), which has it sent again; a connection left half-open would instead
    hold everything sent meanwhile for as long as the kernel keeps trying."""
    if timeout_s <= 0:
        return {}
    timeout_ms = max(1, round(timeout_s * 1000))
    beat_ms = max(1, timeout_ms // 3)
    return {zmq.HEARTBEAT_IVL: beat_ms, zmq.HEARTBEAT_TIMEOUT: timeout_ms, zmq.HEARTBEAT_TTL: timeout_ms}


def publisher(
    context: zmq.Context,
    address: str,
    keys: "curve.Keys | str | None" = None,
    link_timeout_s: float = 0,
    audience: set[str] = frozenset(),
) -> zmq.Socket:
    """A publishing socket bound at `address`: an ipc:// one in a private directory, a
    tcp:// one a CURVE server with this host's `keys` that lets in only this host and
    the hosts named in `audience` (bus/placement.py).

    It is an XPUB: each subscription that reaches it can be read from it (every one,
    `XPUB_VERBOSE`, not only a topic's first), so the publisher learns that a subscriber
    has just joined, and is now sure to receive what it sends next (ZeroMQ drops what
    is sent before). Reading them is optional: unread, they are only a few bytes each."""
    keys = loaded(keys)
    check_endpoint(address, keys)
    tcp = address.startswith("tcp://")
    socket = context.socket(zmq.XPUB, socket_class=CurvePublisher if tcp else zmq.Socket)
    try:
        socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        if tcp:
            curve.apply(socket, curve.server_options(keys) | link_options(link_timeout_s))
            socket.authenticator = curve.authenticator(context, keys, {keys.here, *audience})
        socket.setsockopt(zmq.LINGER, 1000)
        # Audio and tokens must not be dropped by a briefly slow subscriber.
        socket.setsockopt(zmq.SNDHWM, 100_000)
        bind(socket, address, keys)
    except BaseException:
        socket.close()
        raise
    return socket


def loaded(keys: "curve.Keys | str | None") -> "curve.Keys | None":
    """A key directory read, from its path ("" or None: no keys)."""
    return curve.load(keys) if isinstance(keys, (str, Path)) and str(keys) else keys or None


class CurvePublisher(zmq.Socket):
    """A publishing socket that takes its ZAP authenticator down with it."""

    authenticator = None

    def close(self, linger=None) -> None:
        super().close(linger)
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None


def bind(socket: zmq.Socket, address: str, keys: "curve.Keys | None" = None) -> None:
    """Bind after checking the endpoint: an ipc:// socket only in a private directory."""
    check_endpoint(address, keys)
    if address.startswith("ipc://"):
        check_private_dir(Path(address.removeprefix("ipc://")).absolute().parent)
    socket.bind(address)


def subscriber(
    context: zmq.Context,
    addresses: "list[str] | dict[str, str]",
    topics: list[str],
    keys: "curve.Keys | str | None" = None,
    link_timeout_s: float = 0,
) -> zmq.Socket:
    """A socket subscribed to `topics` of every publisher at `addresses`; a tcp:// one
    must present the key of the host that runs it (`addresses` as address -> host name,
    bus/placement.py; a list: this host's)."""
    keys = loaded(keys)
    hosts = addresses if isinstance(addresses, dict) else dict.fromkeys(addresses, "")
    for address in hosts:
        check_endpoint(address, keys)
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, 100_000)
    for topic in topics:
        socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
    # Each connection keeps the options it was made with: the local endpoints first (an
    # ipc:// publisher speaks no CURVE), then each tcp:// one with its host's key.
    remote = [address for address in hosts if address.startswith("tcp://")]
    for address in hosts:
        if address not in remote:
            socket.connect(address)
    for address in remote:
        curve.apply(socket, curve.client_options(keys, hosts[address]) | link_options(link_timeout_s))
        socket.connect(address)
    return socket


def check_endpoint(address: str, keys: "curve.Keys | None" = None) -> None:
    """ipc:// (filesystem permissions guard it), inproc://, or tcp:// with CURVE keys."""
    if address.startswith("ipc://@"):
        raise ConfigError(
            f"endpoint {address}: abstract ipc sockets have no permissions; use a path in a private directory"
        )
    if address.startswith(("ipc://", "inproc://")):
        return
    if not address.startswith("tcp://"):
        raise ConfigError(f"endpoint {address}: only ipc:// and tcp:// (with CURVE keys) endpoints are supported")
    if keys is None:
        raise ConfigError(
            f"endpoint {address} needs CURVE keys: run `voxkey pair` (it makes this host's), "
            'or create them with `python -m bus.curve DIR` and set [bus] curve_dir = "DIR"'
        )
    check_private_dir(keys.directory, "CURVE key directory")
