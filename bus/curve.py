"""CURVE keys for tcp:// endpoints: one keypair per host, and the hosts it trusts.

A key directory (``[bus] curve_dir``) holds:

    host.key_secret   this host's keypair: its publishers on tcp:// are CURVE servers
                      with it, and its subscribers present it as CURVE clients
    host.key          its public key
    hosts.toml        this host's name, and each host paired with it (`voxkey pair`):
                      its address and public key

A subscriber accepts a publisher only if it presents the key of the host that runs
that stage (bus/placement.py), so no host can pose as another's stages; a publisher
lets in only the hosts that run a stage listening to it, so audio goes to the host of
vad and nowhere else. The directory is private (0700, its owner's): it holds a secret.

    python -m bus.curve DIR [NAME [ADDRESS]]     # create a key directory
"""

import socket as net
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

if TYPE_CHECKING:  # zmq.auth imports asyncio: only a pipeline on tcp:// pays for it
    from zmq.auth.thread import ThreadAuthenticator

from bus.config import ConfigError

HOST = "host"
HOSTS = "hosts.toml"
MAKE = "python -m bus.curve DIR"
MAKE_OR_PAIR = f"`voxkey pair`, or {MAKE}"


class CurveError(ConfigError):
    pass


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # where the other hosts reach it (an IP address or a resolvable name)
    key: bytes  # its public key, Z85


@dataclass(frozen=True)
class Keys:
    """A key directory, read: this host's keypair and every host it trusts (itself too)."""

    directory: Path
    here: str
    public: bytes
    secret: bytes
    hosts: dict[str, Host]

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name or self.here]
        except KeyError:
            raise CurveError(
                f"no host {name!r} is paired with this one in {self.directory / HOSTS} "
                f"(paired: {', '.join(sorted(self.hosts))}): run `voxkey pair` on {name} and follow what it prints"
            ) from None


def generate(directory: str | Path, name: str = "", address: str = "") -> Path:
    """Create a private key directory for this host, named `name` (default: its
    hostname) and reached at `address` (default: the name)."""
    directory = Path(directory)
    if Path(directory, f"{HOST}.key_secret").exists():
        raise CurveError(
            f"{directory} already holds CURVE keys: new ones would lock out every host paired with the old"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    import zmq.auth

    public, secret = zmq.auth.create_certificates(directory, HOST)
    Path(secret).chmod(0o600)
    name = name or net.gethostname()
    here = Host(name, address or name, zmq.auth.load_certificate(public)[0])
    _write_hosts(directory, name, {name: here})
    return directory


def load(directory: str | Path) -> Keys:
    directory = Path(directory)
    path = directory / f"{HOST}.key_secret"
    try:
        import zmq.auth

        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError):
        raise CurveError(f"CURVE key {path} is missing or unreadable (create keys with {MAKE_OR_PAIR})") from None
    if secret is None:
        raise CurveError(f"{path} holds no secret key (create keys with {MAKE_OR_PAIR})")
    import tomllib

    try:
        table = tomllib.loads((directory / HOSTS).read_text())
        hosts = {
            name: Host(name, str(host["address"]), str(host["key"]).encode())
            for name, host in table.get("hosts", {}).items()
        }
        here = str(table["here"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CurveError(f"{directory / HOSTS} is missing or unreadable (create keys with {MAKE_OR_PAIR})") from None
    return Keys(directory, here, public, secret, hosts)


def pair(directory: str | Path, name: str, address: str, key: str) -> Host:
    """Trust host `name`, reached at `address`, with public key `key` (Z85)."""
    keys = load(directory)
    if len(key) != 40:
        raise CurveError(f"{key!r} is not a CURVE public key (40 characters of Z85): copy it whole")
    from zmq.utils import z85

    try:
        z85.decode(key)
    except (ValueError, KeyError):
        raise CurveError(f"{key!r} is not a CURVE public key (Z85): copy it whole") from None
    host = Host(name, address, key.encode())
    _write_hosts(keys.directory, keys.here, {**keys.hosts, name: host})
    return host


def rename(directory: str | Path, name: str, address: str) -> Keys:
    """This host's own name and address, changed (tell the hosts paired with it anew)."""
    keys = load(directory)
    others = {other: host for other, host in keys.hosts.items() if other != keys.here}
    _write_hosts(keys.directory, name, {**others, name: Host(name, address, keys.public)})
    return load(directory)


def _write_hosts(directory: Path, here: str, hosts: dict[str, Host]) -> None:
    import tomli_w

    table = {
        "here": here,
        "hosts": {host.name: {"address": host.address, "key": host.key.decode()} for host in hosts.values()},
    }
    written = directory / f"{HOSTS}.new"
    written.write_text(tomli_w.dumps(table))
    written.chmod(0o600)
    written.replace(directory / HOSTS)


def server_options(keys: Keys) -> dict[int, object]:
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: keys.public, zmq.CURVE_SECRETKEY: keys.secret}


def client_options(keys: Keys, server: str) -> dict[int, object]:
    """A subscriber's keys for a publisher on host `server`: it must present that host's key."""
    return {
        zmq.CURVE_PUBLICKEY: keys.public,
        zmq.CURVE_SECRETKEY: keys.secret,
        zmq.CURVE_SERVERKEY: keys.host(server).key,
    }


class Allowed:
    """ZAP's question for a CURVE client, answered: is its key one of these hosts'?"""

    def __init__(self, keys: Keys, hosts: set[str]):
        self.allowed = {keys.host(name).key for name in hosts}

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.allowed


def authenticator(context: zmq.Context, keys: Keys, hosts: set[str]) -> "ThreadAuthenticator":
    """Started ZAP handler for `context`: only clients with the key of one of `hosts`
    get through. Without one, a CURVE server accepts any client key."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=Allowed(keys, hosts))
    return auth


def apply(socket: zmq.Socket, options: dict[int, object]) -> None:
    for option, value in options.items():
        socket.setsockopt(option, value)


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 4:
        sys.exit(f"usage: {MAKE} [NAME [ADDRESS]]")
    print(f"CURVE keys in {generate(*sys.argv[1:])}; set [bus] curve_dir to it")
