"""The runtime every stage process uses.

A stage subclasses :class:`Stage`, names itself, and fills in the hooks:

* ``setup()`` loads its engine before the stage reports ready;
* ``handle(frame)`` reacts to one frame from upstream;
* ``on_end(frame)`` reacts to the end of a stream (default: pass it on once every
  upstream in ``ends_from`` has ended it, so it trails everything they sent);
* ``on_cancel(frame)`` reacts to a `cancel`, which jumps ahead of waiting frames;
* ``tick()`` runs every loop turn, for stages that produce on their own (capture);
* ``on_control(command, args)`` answers a command on the stage's control socket;
* ``on_peer_restart(name)`` learns that a stage it listens to came back with a new pid.

A hook that works for long (a model generating) calls ``interrupted()`` between steps:
heartbeats keep going, and it learns whether a cancel arrived; other frames wait.

The runtime does the rest: config, logging, CPU pinning, sockets, heartbeats,
readiness (engine loaded and every upstream heard), clean SIGTERM shutdown, and
containment: a bad frame is counted and logged, an exception in a hook is logged
with its utterance id, and the stage goes on.
"""

import argparse
import collections
import os
import signal
import sys
import time

import msgpack
import zmq

from bus import config as configuration
from bus import sockets
from bus import log as logging
from bus.frames import Cancel, EndOfStream, Frame, FrameRejected, now_ns
from bus.peer import Peer

POLL_CAP_S = 0.2  # how long SIGTERM may wait for the loop to notice


class StageError(Exception):
    """A stage cannot run (a missing model, an absent device): the message says how to fix it."""


class Stage:
    name = ""
    topics: tuple[str, ...] = ()

    def __init__(self, config: dict):
        self.config = config
        self.settings = configuration.stage_section(config, self.name)
        self.log = logging.setup(self.name)
        self.cpus = _pin(self.settings.get("cpus") or [])
        self.threads = int(self.settings.get("threads") or len(self.cpus))
        self.loaded = False
        self.state = "starting"
        self.progress: dict = {}  # published in every heartbeat
        self._stopping = False
        self.peer: Peer | None = None
        self._waiting: collections.deque[Frame] = collections.deque()
        self._ended: dict[str, set] = {}
        self._next_beat = 0.0
        self._announced_ready = False

    # --- hooks -------------------------------------------------------------

    def setup(self) -> None:
        pass

    def handle(self, frame: Frame) -> None:
        pass

    def on_end(self, frame: Frame) -> None:
        if self.stream_ended(frame):
            self.publish(frame.body, utt=frame.utt, marks=frame.marks)

    def on_cancel(self, frame: Frame) -> None:
        pass

    def tick(self) -> float:
        """Work done between frames; returns how long the loop may wait for input."""
        return POLL_CAP_S

    def teardown(self) -> None:
        pass

    def on_peer_restart(self, name: str) -> None:
        self.log.warning("peer restarted", peer=name)

    def on_control(self, command: str, args: dict) -> str:
        """Answer a control command; raise ValueError to refuse it."""
        if command == "status":
            return f"{self.state} ready={self.ready} pid={os.getpid()}"
        raise ValueError(f"unknown command {command!r} for stage {self.name}")

    # --- services ------------------------------------------------------------

    def publish(self, body, *, utt: str = "", marks: dict | None = None, payload: bytes = b"") -> Frame:
        return self.peer.publish(body, utt=utt, marks=marks, payload=payload)

    def stream_ended(self, frame: Frame) -> bool:
        """True once every upstream in `ends_from` has ended this stream."""
        sources = set(self.settings.get("ends_from") or [s for s in self.settings.get("listen", []) if s != "cli"])
        ended = self._ended.setdefault(frame.body.stream, set())
        ended.add(frame.src)
        if ended >= sources:
            del self._ended[frame.body.stream]
            return True
        return False

    def interrupted(self) -> bool:
        """Between steps of long work: beat, and see whether a cancel arrived."""
        self._beat_if_due()
        cancelled = False
        while self.peer.sub.poll(0):
            frame = self.peer.accept(self.peer.sub.recv_multipart())
            if frame is None or frame.topic == "heartbeat":
                continue
            if isinstance(frame.body, Cancel):
                self.on_cancel(frame)
                cancelled = True
            else:
                self._waiting.append(frame)
        return cancelled

    def _beat_if_due(self) -> None:
        now = time.monotonic()
        ready = self.ready
        # A change of readiness is announced at once, not at the next beat: after a
        # restart, whoever waits for this stage (vad re-sending, capture resuming)
        # would otherwise lose up to a heartbeat period.
        if now >= self._next_beat or ready != self._announced_ready:
            self.peer.heartbeat(ready, self.state, self.cpus, self.progress)
            self._announced_ready = ready
            self._next_beat = now + float(self.config["bus"]["heartbeat_s"])

    @property
    def ready(self) -> bool:
        return self.loaded and self.peer.heard_all()

    def stop(self) -> None:
        self._stopping = True

    # --- the loop ------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        listen = list(self.settings.get("listen", []))
        self.peer = Peer(self.name, self.config, listen, list(self.topics), self.log)
        self.control = self.peer.context.socket(zmq.REP)
        self.control.setsockopt(zmq.LINGER, 0)
        sockets.bind(self.control, sockets.control_endpoint(self.config, self.name))
        self.log.info("starting", pid=os.getpid(), cpus=self.cpus, threads=self.threads, listen=listen)
        self.peer.heartbeat(False, "loading", self.cpus)
        started = time.monotonic()
        try:
            self.setup()
        except StageError as error:
            self.log.error(str(error))
            print(f"voxkey {self.name}: {error}", file=sys.stderr)
            return 2
        self.loaded = True
        self.state = self.state if self.state != "starting" else "running"
        self.log.info("loaded", seconds=round(time.monotonic() - started, 3))
        try:
            while not self._stopping:
                self._beat_if_due()
                if self.control.poll(0):
                    self._answer_control()
                if self._waiting:
                    self._dispatch(self._waiting.popleft())
                    continue
                wait = min(self.tick(), self._next_beat - time.monotonic(), POLL_CAP_S)
                frame = self.peer.receive(max(0, int(wait * 1000)))
                if frame is not None:
                    self._dispatch(frame)
                while self.peer.restarted:
                    self.on_peer_restart(self.peer.restarted.pop())
        finally:
            self.log.info("stopping", counters=dict(self.peer.counters))
            self.teardown()
            self.control.close()
            self.peer.close()
        return 0

    def _answer_control(self) -> None:
        try:
            request = msgpack.unpackb(self.control.recv(), raw=False)
            reply = {"ok": True, "message": self.on_control(str(request["command"]), dict(request.get("args", {})))}
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as error:
            reply = {"ok": False, "message": str(error)}
        self.control.send(msgpack.packb(reply))

    def _dispatch(self, frame: Frame) -> None:
        if frame.topic == "heartbeat":
            return
        try:
            if isinstance(frame.body, EndOfStream):
                self.on_end(frame)
            elif isinstance(frame.body, Cancel):
                self.on_cancel(frame)
            else:
                self.handle(frame)
        except FrameRejected as rejected:  # a frame valid on the wire but not in meaning
            self.peer.reject(rejected)
        except Exception:
            self.peer.counters["errors"] += 1
            self.log.exception("failed to handle frame", utt=frame.utt, topic=frame.topic)


def mark(frame_marks: dict, name: str) -> dict:
    """A copy of an utterance's timestamps with one more."""
    return {**frame_marks, name: now_ns()}


def _pin(cpus: list[int]) -> list[int]:
    if cpus:
        os.sched_setaffinity(0, cpus)
    return sorted(os.sched_getaffinity(0))


def main(stage_class: type[Stage]) -> None:
    """`python -m stages.NAME [--config FILE] [--set section.key=value ...]`"""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage_class.name}")
    parser.add_argument("--config", default=os.environ.get("VOXKEY_CONFIG"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()
    try:
        stage = stage_class(configuration.load(args.config, args.set))
        sys.exit(stage.run())
    except (configuration.ConfigError, StageError, OSError) as error:
        print(f"voxkey {stage_class.name}: {error}", file=sys.stderr)
        sys.exit(2)
