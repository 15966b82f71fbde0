"""The runtime every stage process uses.

A stage subclasses :class:`Stage`, names itself, and fills in the hooks; what it reads,
from whom, and whom it hands frames to is the pipeline's wiring (bus/wiring.py). Every
stage then reads as subscribe -> transform -> publish:

* ``setup()`` loads its engine before the stage reports ready;
* ``handle(frame)`` transforms one data frame from upstream, publishing what follows from it;
* ``signal(frame)`` reacts to a control frame (`cancel`, `voice`, `start`), which is
  taken ahead of every data frame waiting;
* ``tick()`` runs every loop turn, for stages that produce on their own (capture),
  and says how long the loop may sleep; ``wake_fd`` and ``watched()`` cut that sleep short;
* ``on_control(command, args)`` answers a command on the stage's control socket
  (`status`, answered for every stage: its state, readiness, pid and ``progress``);
* ``on_peer_restart(name)`` learns that a stage it listens to came back with a new pid;
* ``on_acknowledged(frames)`` learns that reliable frames it published were acknowledged.

``publish(body, key=KEY)`` hands a frame over reliably to its consumer (bus/delivery.py):
kept until acknowledged, sent again to a consumer that restarts, and the input being
handled is acknowledged upstream only once everything it caused has been. A topic in
``sequential`` is taken one frame at a time: the next waits until the previous is
acknowledged all the way down (the router types utterances in the order spoken).

A hook that works for long (a model generating) calls ``interrupted()`` between steps:
heartbeats and acknowledgements keep flowing and control frames are taken; data waits.

The runtime does the rest: config, logging, CPU pinning, sockets, heartbeats,
readiness (engine loaded and every upstream heard), clean SIGTERM shutdown, persisted
state (bus/state.py), and containment: a bad frame is counted and logged, an exception
in a hook is logged with its utterance id, and the stage goes on.

An idle stage sleeps until something happens: a frame, a control request, its
`wake_fd` or a `watched()` descriptor, a signal (through `signal.set_wakeup_fd`), or its
next heartbeat. Nothing polls on a timer: a device left on all day costs one wake per
heartbeat period per stage while nobody speaks.
"""

import argparse
import collections
import math
import os
import signal as signals
import sys
import time
from typing import TypeVar

import zmq

from bus import config as configuration
from bus import control as control_socket
from bus import cpus as cpu_plan
from bus import log as logging
from bus import records, sockets, wiring
from bus import state as persistence
from bus.control import StageStatus
from bus.delivery import Delivery, input_of
from bus.frames import Ack, Cancel, Frame, FrameRejected, Heartbeat, Start, Voice, now_ns
from bus.lifetime import stop_when_parent_dies
from bus.peer import Peer

UNTIL_WOKEN = math.inf  # what `tick` returns when only an event can give it work
# The exit status of a stage that cannot run as configured (a missing model, an absent
# device): supervisord.conf lists it in `exitcodes`, so it is not restarted in a loop
# that could never succeed; the CLI reports the stage's last error line instead.
CANNOT_RUN = 2
CONTROL_FRAMES = (Cancel, Voice, Start)
T = TypeVar("T")


def count_of(counts: dict, name: str, default: int = 0) -> int:
    """A peer's count for `name` from a heartbeat, if it is a whole number."""
    value = counts.get(name, default)
    return value if type(value) is int else default


class StageError(Exception):
    """A stage cannot run (a missing model, an absent device): the message says how to fix it."""


class Stage:
    name = ""
    sequential: tuple[str, ...] = ()  # topics handled one frame at a time, end to end
    by_position: tuple[str, ...] = ()  # reliable topics this stage acknowledges by position itself
    # An eventfd another thread of the stage writes to when `tick` has work (audio
    # arrived): the loop sleeps until then instead of polling. The runtime empties it.
    wake_fd: int | None = None

    def __init__(self, config: dict):
        self.config = config
        self.settings = configuration.stage_section(config, self.name)
        self.log = logging.setup(self.name, user_text=bool(config["log"]["user_text"]))
        self.cpus = _pin(self.settings.get("cpus") or [])
        engine = cpu_plan.for_stage(self.name, self.settings, len(self.cpus))
        self.threads, self.batch_threads = engine.threads, engine.batch
        # Before setup() loads the engine: the OpenMP runtime reads it once, at load.
        cpu_plan.apply_wait_policy(str(self.settings.get("wait") or "default"))
        self.loaded = False
        self.state = "starting"
        self.progress = None  # the stage's record in bus/progress.py, sent in every heartbeat
        self.audience = list(self.settings.get("audience") or [])  # peers that must hear us before we act
        self._stopping = False
        self.peer: Peer | None = None
        self.delivery: Delivery | None = None
        self._waiting: collections.deque[Frame] = collections.deque()
        self._current = None  # the input being handled: what is published now is caused by it
        self._last_taken: dict[str, tuple] = {}  # sequential topic -> the last of its inputs handled
        self._next_beat = 0.0
        self._announced: tuple = ()  # (readiness, the pids heard, progress) in the last heartbeat
        self._drained: tuple[int, ...] = ()  # the descriptors the runtime empties: wake_fd, the signal pipe

    # --- hooks -------------------------------------------------------------

    def setup(self) -> None:
        pass

    def handle(self, frame: Frame) -> None:
        pass

    def signal(self, frame: Frame) -> None:
        pass

    def tick(self) -> float:
        """Work done between frames; returns how long the loop may wait for input."""
        return UNTIL_WOKEN

    def watched(self) -> tuple[int, ...]:
        """File descriptors whose input `tick` reads (a keyboard's): one that becomes
        readable wakes the loop. The stage reads them; the runtime only waits on them."""
        return ()

    def teardown(self) -> None:
        pass

    def on_peer_restart(self, name: str) -> None:
        self.log.warning("peer restarted", peer=name)

    def on_acknowledged(self, frames: list[Frame]) -> None:
        pass

    def on_control(self, command: str, args: dict):
        """Answer a control command (any msgpack value); raise ValueError (KeyError,
        TypeError) to refuse it (bus/control.py)."""
        if command == "status":
            links = self.peer.links(time.monotonic())
            return records.plain(
                StageStatus(self.state, self.ready, os.getpid(), self._progress_data(), dict(self.peer.counters), links)
            )
        raise ValueError(f"unknown command {command!r} for stage {self.name}")

    # --- services ------------------------------------------------------------

    def publish(
        self,
        body,
        *,
        utt: str = "",
        marks: dict | None = None,
        payload: bytes = b"",
        to: str = "",
        key: str = "",
        position: int | None = None,
    ) -> Frame:
        """Publish a frame; with a delivery `key`, hand it over reliably to its consumer in
        the wiring (bus/wiring.py), or to `to` where the wiring leaves a choice."""
        to = (to or wiring.consumer_of(self.name, body.TOPIC)) if key else ""
        frame = Frame(body=body, src=self.name, utt=utt, marks=dict(marks or {}), payload=payload, to=to, key=key)
        if to:
            self.delivery.put(frame, self._current, position)
        else:
            self.peer.send(frame)
        return frame

    def interrupted(self) -> None:
        """Between steps of long work: beat, take acknowledgements and control frames."""
        self._beat_if_due()
        while self.peer.sub.poll(0):
            frame = self.peer.accept(self.peer.sub.recv_multipart())
            if frame is not None:
                self.arrive(frame)

    def waiting(self) -> list[Frame]:
        """Data frames that have arrived and wait to be handled, oldest first, after
        taking in what the sockets hold: a stage may skip work they make pointless."""
        self.interrupted()
        return list(self._waiting)

    def load_state(self, kind: type[T]) -> T:
        """This stage's persisted state as a `kind` record, checked (bus/state.py); a
        fresh `kind()` if there is none or it was malformed."""
        return persistence.load(persistence.path_for(self.config, self.name), kind, self.log)

    def save_state(self, record) -> None:
        persistence.save(persistence.path_for(self.config, self.name), record)

    def announce(self) -> None:
        """Send a heartbeat at the next loop turn rather than at the next period (a new
        `progress` is announced without asking)."""
        self._next_beat = 0.0

    def listens_to(self) -> list[str]:
        """The peers this stage subscribes to: its neighbours in the wiring, and those a
        run adds (`listen`, `audience`: the command, in a replay)."""
        return sorted(set(wiring.listens_to(self.name)) | set(self.settings.get("listen", [])) | set(self.audience))

    @property
    def ready(self) -> bool:
        return self.loaded and self.peer.heard_all()

    def stop(self) -> None:
        self._stopping = True

    # --- the loop ------------------------------------------------------------

    def run(self) -> int:
        signals.signal(signals.SIGTERM, lambda *_: self.stop())
        signals.signal(signals.SIGINT, lambda *_: self.stop())
        signalled = _wake_on_signals()
        listen = self.listens_to()
        self.attach(Peer(self.name, self.config, listen, list(wiring.consumes(self.name)), self.log))
        self.control = self.peer.context.socket(zmq.REP)
        self.control.setsockopt(zmq.LINGER, 0)
        sockets.bind(self.control, sockets.control_endpoint(self.config, self.name))
        self.log.info(
            "starting",
            pid=os.getpid(),
            cpus=self.cpus,
            threads=self.threads,
            batch_threads=self.batch_threads,
            wait=os.environ.get("OMP_WAIT_POLICY", "default"),
            listen=listen,
        )
        self.peer.heartbeat(False, "loading", self.cpus)
        started = time.monotonic()
        try:
            self.setup()
        except StageError as error:
            self.log.error(str(error))
            print(f"voxkey {self.name}: {error}", file=sys.stderr)
            return CANNOT_RUN
        self.loaded = True
        self._drained = tuple(fd for fd in (self.wake_fd, signalled) if fd is not None)
        self.state = self.state if self.state != "starting" else "running"
        self.log.info("loaded", seconds=round(time.monotonic() - started, 3))
        try:
            while not self._stopping:
                self._beat_if_due()
                if self.control.poll(0):
                    self._answer_control()
                if self.work_one():
                    continue
                wait = min(self.tick(), self._next_beat - time.monotonic())
                frame = self.peer.receive(max(0, math.ceil(wait * 1000)), self._wakers())
                for fd in self._drained:
                    _drain(fd)  # before the work it announced is looked for
                if frame is not None:
                    self.arrive(frame)
        finally:
            self.log.info("stopping", counters=dict(self.peer.counters))
            self.teardown()
            self.control.close()
            self.peer.close()
            os.close(signals.set_wakeup_fd(-1))
            os.close(signalled)
        return 0

    def _wakers(self) -> tuple:
        """What ends the loop's wait besides a frame."""
        return (self.control, *self._drained, *self.watched())

    def attach(self, peer) -> None:
        """Give the stage its place on the bus (a Peer; an in-process test gives a stand-in)."""
        self.peer = peer
        run = str(self.config["bus"].get("run_id") or "")
        self.delivery = Delivery(self.name, peer.send, peer.hears_me, peer.pid_of, peer.counters, self.log, run)

    def work_one(self) -> bool:
        """Handle the next waiting frame that may be handled now; False if none may."""
        frame = self._next_data()
        if frame is None:
            return False
        self._dispatch(frame)
        return True

    def arrive(self, frame: Frame) -> None:
        """Every frame that arrives (from the bus, or an in-process test): delivery
        bookkeeping and control frames now, data queued."""
        for peer in self.peer.take_gaps():
            # Frames of `peer` were lost on the way: what it sends next waits for what it
            # sends again, once our next heartbeat (at once: news) says what we missed.
            self.delivery.lost_from(peer)
        if isinstance(frame.body, Heartbeat):
            if frame.body.heard.get(self.name, os.getpid()) != os.getpid():
                # It listens to us but has not heard this process: its subscription
                # joined after our last beat (ZeroMQ drops what a subscriber was not
                # connected for). Beat now rather than leave it waiting a period.
                self.announce()
            if frame.src in self.peer.restarted:
                self.peer.restarted.discard(frame.src)
                self.delivery.peer_restarted(frame.src)
                self.on_peer_restart(frame.src)
            self.delivery.producer_sent_through(frame.src, count_of(frame.body.sent_through, self.name, -1))
            self.delivery.missing_reported(frame.src, count_of(frame.body.missed, self.name))
            self.delivery.heard_from(frame.src)
        elif isinstance(frame.body, Ack):
            settled = self.delivery.on_ack(frame) if frame.to == self.name else []
            if settled:
                self.on_acknowledged(settled)
        elif frame.to and frame.to != self.name:
            return  # handed over to another consumer of the topic
        elif frame.reliable and frame.to_pid != os.getpid():
            self.peer.counters["meant_for_a_predecessor"] += 1  # it comes again, in order
        elif frame.reliable and not self.delivery.in_order(frame):
            return  # set aside: it comes again, in order, with what was lost before it
        elif isinstance(frame.body, CONTROL_FRAMES):
            self._guarded(self.signal, frame)
        elif not frame.reliable or frame.topic in self.by_position or self.delivery.receive(frame):
            self._waiting.append(frame)

    def _next_data(self) -> Frame | None:
        """The first waiting frame that may be handled now, in arrival order except that
        a sequential topic waits for its previous frame, and nothing is handled before
        every peer in `audience` hears this process (so none misses what it says)."""
        if not self._waiting or not all(self.peer.hears_me(name) for name in self.audience):
            return None
        for index, frame in enumerate(self._waiting):
            if frame.topic in self.sequential and self._sequential_busy(frame):
                continue
            del self._waiting[index]
            return frame
        return None

    def _sequential_busy(self, frame: Frame) -> bool:
        """Whether the last frame of this topic taken up is not done yet (others that
        merely wait behind it are open too, but do not count)."""
        return self._last_taken.get(frame.topic) in self.delivery.open

    def _dispatch(self, frame: Frame) -> None:
        tracked = frame.reliable and frame.topic not in self.by_position
        self._current = input_of(frame) if tracked else None
        if frame.topic in self.sequential:
            self._last_taken[frame.topic] = self._current
        try:
            self._guarded(self.handle, frame)
        finally:
            self._current = None
            if tracked:
                # A frame whose handling failed is acknowledged too: kept, it would
                # come back and fail again, and hold up everything behind it.
                self.delivery.handled(input_of(frame))

    def _guarded(self, hook, frame: Frame) -> None:
        try:
            hook(frame)
        except FrameRejected as rejected:  # a frame valid on the wire but not in meaning
            self.peer.reject(rejected)
        except Exception:
            self.peer.counters["errors"] += 1
            self.log.exception("failed to handle frame", utt=frame.utt, topic=frame.topic)

    def _beat_if_due(self) -> None:
        now = time.monotonic()
        due = now >= self._next_beat
        if due:  # once a period: a producer whose frames are still set aside is told again
            self.peer.missed.update(self.delivery.still_setting_aside())
        news = (self.ready, self.peer.heard_pids(), self.progress, dict(self.peer.missed))
        joined = self.peer.take_joined()
        # News is announced at once, not at the next beat: a change of readiness, a
        # peer heard anew (started or restarted), a new progress (an utterance cut, a
        # mode switched), a subscriber that just joined. Whoever waits for this stage
        # to be ready, to hear it before handing it frames, or for a replay's end,
        # would lose up to a period; the period itself is only for what changes
        # without news (counters), so it can be long.
        if due or news != self._announced or joined:
            self.peer.heartbeat(
                self.ready,
                self.state,
                self.cpus,
                progress=self._progress_data(),
                sent_through=self.delivery.sent_through(),
            )
            self._announced = news
            self._next_beat = now + float(self.config["bus"]["heartbeat_s"])

    def _progress_data(self) -> dict:
        return records.plain(self.progress) if self.progress is not None else {}

    def _answer_control(self) -> None:
        control_socket.answer(self.control, self.on_control)


def mark(frame_marks: dict, name: str) -> dict:
    """A copy of an utterance's timestamps with one more."""
    return {**frame_marks, name: now_ns()}


def _wake_on_signals() -> int:
    """A pipe the interpreter writes each signal's number to as it arrives: polled with
    the sockets, it ends the wait at once, where the handler alone would run only when
    the wait ends (the SIGTERM a service manager or supervisord stops us with)."""
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signals.set_wakeup_fd(write, warn_on_full_buffer=False)
    return read


def _drain(fd: int) -> None:
    """Empty a non-blocking eventfd or pipe: it wakes the next wait only when written again."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


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
        stop_when_parent_dies()  # supervisord killed: no stage runs on as an orphan
        stage = stage_class(configuration.load(args.config, args.set))
        sys.exit(stage.run())
    except (configuration.ConfigError, StageError) as error:
        print(f"voxkey {stage_class.name}: {error}", file=sys.stderr)
        sys.exit(CANNOT_RUN)
    except OSError as error:  # perhaps passing (a socket in use): worth a restart
        print(f"voxkey {stage_class.name}: {error}", file=sys.stderr)
        sys.exit(1)
