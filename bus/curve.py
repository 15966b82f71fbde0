"""CURVE keys for tcp:// endpoints: who may publish, who may listen.

A key directory (``[bus] curve_dir``) holds:

    server.key_secret   the keypair of every PUB socket bound on tcp:// (the CURVE server)
    server.key          its public key, which subscribers need to connect
    client.key_secret   the keypair subscribers present (the CURVE client)
    authorized/*.key    public keys of the clients a publisher accepts

The directory is private (0700, its owner's) like the socket directory: it holds
secret keys. To let a subscriber on another host in, give it a copy of `server.key`
and its own client keypair, and put its `client.key` in `authorized/` here.

    python -m bus.curve DIR      # create a key directory
"""

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

if TYPE_CHECKING:  # zmq.auth imports asyncio: only a pipeline on tcp:// pays for it
    from zmq.auth.thread import ThreadAuthenticator

from bus.config import ConfigError

SERVER = "server"
CLIENT = "client"
AUTHORIZED = "authorized"


class CurveError(ConfigError):
    pass


def generate(directory: str | Path) -> Path:
    """Create a private key directory with a server and a client keypair, the client authorized."""
    directory = Path(directory)
    if Path(directory, f"{SERVER}.key_secret").exists():
        raise CurveError(f"{directory} already holds CURVE keys: new ones would lock out every client given the old")
    authorized = directory / AUTHORIZED
    for path in (directory, authorized):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
    for name in (SERVER, CLIENT):
        import zmq.auth

        _, secret = zmq.auth.create_certificates(directory, name)
        Path(secret).chmod(0o600)
    shutil.copy(directory / f"{CLIENT}.key", authorized / f"{CLIENT}.key")
    return directory


def keypair(directory: str | Path, name: str) -> tuple[bytes, bytes]:
    """(public, secret) from `DIR/NAME.key_secret`."""
    path = Path(directory, f"{name}.key_secret")
    public, secret = _load(path)
    if secret is None:
        raise CurveError(f"{path} holds no secret key")
    return public, secret


def public_key(directory: str | Path, name: str) -> bytes:
    return _load(Path(directory, f"{name}.key"))[0]


def _load(path: Path) -> tuple[bytes, bytes | None]:
    try:
        import zmq.auth

        return zmq.auth.load_certificate(path)
    except (OSError, ValueError):
        raise CurveError(
            f"CURVE key {path} is missing or unreadable (create keys with: python -m bus.curve DIR)"
        ) from None


def server_options(directory: str | Path, name: str = SERVER) -> dict[int, object]:
    public, secret = keypair(directory, name)
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}


def client_options(directory: str | Path, server_name: str = SERVER, name: str = CLIENT) -> dict[int, object]:
    public, secret = keypair(directory, name)
    return {
        zmq.CURVE_PUBLICKEY: public,
        zmq.CURVE_SECRETKEY: secret,
        zmq.CURVE_SERVERKEY: public_key(directory, server_name),
    }


def authenticator(context: zmq.Context, directory: str | Path) -> "ThreadAuthenticator":
    """Started ZAP handler for `context`: only clients whose public key is in
    `DIR/authorized` get through. Without one, a CURVE server accepts any client key."""
    authorized = Path(directory, AUTHORIZED)
    if not authorized.is_dir():
        raise CurveError(f"{authorized} does not exist: it holds the public keys of the clients allowed in")
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized))
    return auth


def apply(socket: zmq.Socket, options: dict[int, object]) -> None:
    for option, value in options.items():
        socket.setsockopt(option, value)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bus.curve DIR")
    print(f"CURVE keys in {generate(sys.argv[1])}; set [bus] curve_dir to it")
