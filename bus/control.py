"""A stage's control socket, both ends: one request, one reply.

A stage binds a REP socket at `sockets.control_endpoint(config, name)` and, when a request
waits, calls `answer(socket, on_control)`; the command calls `ask(config, stage, command,
args)`, which lives in bus/asking.py so that a command need not import these records.
On the wire each message is one msgpack map, the plain form of its record
(bus/records.py):

    ControlRequest {command, args}  ->  ControlReply {ok, message}

Every stage answers `status` with a StageStatus; the others are the stages' own
(capture `listen`, the router `mode` and `new-conversation`).

`on_control(command, args)` returns the reply's message (any msgpack value); a ValueError,
KeyError or TypeError it raises, or a request that is not a ControlRequest, is a refusal
(`ok` false, the message says why). `ask` returns the message of an accepted request and
raises ControlError otherwise (bus/asking.py).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq

from bus.records import plain, typed


@dataclass(frozen=True)
class ControlRequest:
    command: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlReply:
    ok: bool
    message: Any = ""


@dataclass(frozen=True)
class PeerLink:
    """What a stage knows of a peer it listens to, from its heartbeats: how it is and
    how its link is (a stage on another host has no control socket here to ask)."""

    ready: bool
    heard_s: float  # since its last heartbeat arrived
    round_trip_ms: float | None = None  # None: not measured yet


@dataclass(frozen=True)
class StageStatus:
    """Every stage's answer to `status`: what its heartbeats say of it."""

    state: str
    ready: bool
    pid: int
    progress: dict[str, Any] = field(default_factory=dict)  # its record of bus/progress.py, plain
    counters: dict[str, int] = field(default_factory=dict)  # as now, not as at its last heartbeat
    links: dict[str, PeerLink] = field(default_factory=dict)  # each peer it has heard a heartbeat of


def answer(socket: zmq.Socket, on_control: Callable[[str, dict], Any]) -> None:
    """Take the request waiting on the REP `socket` and send its reply."""
    try:
        request = typed(ControlRequest, msgpack.unpackb(socket.recv(), raw=False))
    except (ValueError, TypeError, msgpack.UnpackException) as error:  # RecordError is a ValueError
        reply = ControlReply(False, f"not a control request: {str(error) or type(error).__name__}")
    else:
        try:
            reply = ControlReply(True, on_control(request.command, request.args))
        except (ValueError, KeyError, TypeError) as error:
            reply = ControlReply(False, str(error))
    socket.send(msgpack.packb(plain(reply)))
