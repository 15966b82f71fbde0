"""A stage's control socket, both ends: one request, one reply.

A stage binds a REP socket at `sockets.control_endpoint(config, name)` and, when a request
waits, calls `answer(socket, on_control)`; the command calls `ask(config, stage, command,
args)`. On the wire each message is one msgpack map, the plain form of its record
(bus/records.py):

    ControlRequest {command, args}  ->  ControlReply {ok, message}

Every stage answers `status` with a StageStatus; the others are the stages' own
(capture `listen`, the router `mode` and `new-conversation`).

`on_control(command, args)` returns the reply's message (any msgpack value); a ValueError,
KeyError or TypeError it raises, or a request that is not a ControlRequest, is a refusal
(`ok` false, the message says why). `ask` returns the message of an accepted request and
raises ControlError otherwise, its message one line: the stage is not running, it did not
answer within the timeout, or it refused (its reason).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

from bus import sockets
from bus.records import RecordError, plain, typed


@dataclass(frozen=True)
class ControlRequest:
    command: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlReply:
    ok: bool
    message: Any = ""


@dataclass(frozen=True)
class StageStatus:
    """Every stage's answer to `status`: what its heartbeats say of it."""

    state: str
    ready: bool
    pid: int
    progress: dict[str, Any] = field(default_factory=dict)  # its record of bus/progress.py, plain
    counters: dict[str, int] = field(default_factory=dict)  # as now, not as at its last heartbeat


class ControlError(Exception):
    """A command a stage did not carry out; the message is one line saying why."""


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


def ask(config: dict, stage: str, command: str, args: dict[str, Any], timeout_s: float = 3.0) -> Any:
    """Send `command` to a running stage's control socket; returns the message of its reply."""
    endpoint = sockets.control_endpoint(config, stage)
    if not Path(endpoint.removeprefix("ipc://")).exists():  # say so now rather than after the timeout
        raise ControlError(f"stage {stage} is not running (no {endpoint}): start voxkey with voxkey up")
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoint)
        socket.send(msgpack.packb(plain(ControlRequest(command, args))))
        if not socket.poll(int(timeout_s * 1000)):
            raise ControlError(f"stage {stage} did not answer in {timeout_s:.0f} s: is voxkey running (voxkey up)?")
        data = msgpack.unpackb(socket.recv(), raw=False)
    finally:
        socket.close()
    try:
        reply = typed(ControlReply, data)
    except RecordError as error:
        raise ControlError(f"{stage}: not a reply: {error}") from None
    if not reply.ok:
        raise ControlError(f"{stage}: {_one_line(reply.message)}")
    return reply.message


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())
