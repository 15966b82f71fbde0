"""The command's end of a stage's control socket (bus/control.py is the stage's): send
one request, take one reply.

It speaks control.py's two records, ControlRequest {command, args} and ControlReply
{ok, message}, as the plain msgpack maps they are on the wire, and so imports neither
them nor dataclasses: a key binding's `voxkey listen` starts this module, zmq and
msgpack, and no more (`voxkey bench --commands`). tests/test_stage_runtime.py holds it
to the records.
"""

import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from bus import sockets
from bus.errors import Explained


class ControlError(Explained):
    """A command a stage did not carry out; the message is one line saying why."""


def request(command: str, args: dict[str, Any]) -> dict:
    """A ControlRequest, plain."""
    return {"command": command, "args": args}


def reply_message(stage: str, data: Any) -> Any:
    """The message of a ControlReply (plain) that says the command was carried out;
    ControlError if it is not one, or says it was not."""
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool) or "message" not in data:
        raise ControlError(f"{stage}: not a reply: {data!r:.80}")
    if not data["ok"]:
        raise ControlError(f"{stage}: {one_line(data['message'])}")
    return data["message"]


def ask(config: dict, stage: str, command: str, args: dict[str, Any], timeout_s: float = 3.0) -> Any:
    """Send `command` to a running stage's control socket; returns the message of its reply."""
    endpoint = sockets.control_endpoint(config, stage)
    if not Path(endpoint.removeprefix("ipc://")).exists():  # say so now rather than after the timeout
        raise ControlError(f"stage {stage} is not running (no {endpoint}): start voxkey with voxkey up")
    return ask_at(endpoint, stage, command, args, timeout_s)


def ask_each(
    config: dict, stages: list[str], command: str, args: dict[str, Any], timeout_s: float = 3.0
) -> dict[str, Any]:
    """`command` to every one of `stages` at once: stage -> the message of its reply, or
    the ControlError saying why it gave none. Waits `timeout_s` at most in all."""
    answers: dict[str, Any] = {}
    waiting: dict[zmq.Socket, str] = {}
    poller = zmq.Poller()
    try:
        for stage in stages:
            endpoint = sockets.control_endpoint(config, stage)
            if not Path(endpoint.removeprefix("ipc://")).exists():
                answers[stage] = ControlError(f"stage {stage} is not running (no {endpoint})")
                continue
            socket = zmq.Context.instance().socket(zmq.REQ)
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(endpoint)
            socket.send(msgpack.packb(request(command, args)))
            waiting[socket] = stage
            poller.register(socket, zmq.POLLIN)
        deadline = time.monotonic() + timeout_s
        while waiting and (left := deadline - time.monotonic()) > 0:
            for socket, _ in poller.poll(left * 1000):
                stage = waiting.pop(socket)
                poller.unregister(socket)
                try:
                    answers[stage] = reply_message(stage, msgpack.unpackb(socket.recv(), raw=False))
                except ControlError as refused:
                    answers[stage] = refused
                socket.close()
        for stage in waiting.values():
            answers[stage] = ControlError(f"stage {stage} did not answer in {timeout_s:g} s")
    finally:
        for socket in waiting:
            socket.close()
    return {stage: answers[stage] for stage in stages}


def ask_at(endpoint: str, stage: str, command: str, args: dict[str, Any], timeout_s: float = 3.0) -> Any:
    """Send `command` to the stage answering at `endpoint` (ipc://PATH); returns the
    message of its reply."""
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoint)
        socket.send(msgpack.packb(request(command, args)))
        if not socket.poll(int(timeout_s * 1000)):
            raise ControlError(f"stage {stage} did not answer in {timeout_s:.0f} s: is voxkey running (voxkey up)?")
        data = msgpack.unpackb(socket.recv(), raw=False)
    finally:
        socket.close()
    return reply_message(stage, data)


def one_line(message: Any) -> str:
    return " ".join(str(message).split())
