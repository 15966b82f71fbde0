"""One participant's view of the bus: its publishing socket, its subscriptions, and the
bookkeeping every participant needs (sequence numbers, rejections, losses)."""

import os
from collections import Counter

import zmq

from bus import frames, sockets
from bus.frames import Frame, FrameRejected

# Log the first few rejections of each kind, then one in this many, so a flood of
# garbage cannot flood the log too.
_LOG_EVERY = 1000


class Peer:
    def __init__(self, name: str, config: dict, listen: list[str], topics: list[str], log):
        self.name = name
        self.log = log
        self._pollers: dict[tuple, zmq.Poller] = {}  # what else wakes `receive` -> a poller of it and `sub`
        self.counters: Counter = Counter()
        self.heard: dict[str, frames.Heartbeat | None] = {source: None for source in listen}
        self.restarted: set[str] = set()  # peers seen with a new pid since last asked
        self.joined = False  # a subscriber joined since last asked (`take_joined`)
        self._next_seq: Counter = Counter()
        self._last_seq: dict[tuple[str, str], int] = {}
        self.context = zmq.Context()
        keys = sockets.curve_dir(config)
        subscribed = sorted(set(topics) | {frames.Heartbeat.TOPIC, frames.Ack.TOPIC})
        self.pub = None
        try:
            self.pub = sockets.publisher(self.context, sockets.endpoint(config, name), keys)
            self.sub = sockets.subscriber(
                self.context, [sockets.endpoint(config, source) for source in listen], subscribed, keys
            )
        except BaseException:  # a refused endpoint: leave nothing open that would hang exit
            if self.pub is not None:
                self.pub.close(linger=0)
            self.context.term()
            raise

    def publish(self, body, *, utt: str = "", marks: dict | None = None, payload: bytes = b"") -> Frame:
        frame = Frame(body=body, src=self.name, utt=utt, marks=dict(marks or {}), payload=payload)
        self.send(frame)
        return frame

    def send(self, frame: Frame) -> None:
        """Put a frame on the wire, numbered in its topic (a re-sent frame is numbered
        anew: the numbers count what was sent, so a receiver can count losses)."""
        frame.seq = self._next_seq[frame.topic]
        self._next_seq[frame.topic] += 1
        self.pub.send_multipart(frames.encode(frame), copy=False)
        self.counters[f"sent.{frame.topic}"] += 1

    def pid_of(self, name: str) -> int:
        beat = self.heard.get(name)
        return beat.pid if beat is not None else 0

    def hears_me(self, name: str) -> bool:
        """Whether `name`'s latest heartbeat says it hears this very process."""
        beat = self.heard.get(name)
        return beat is not None and beat.heard.get(self.name) == os.getpid()

    def receive(self, timeout_ms: int, wake: tuple = ()) -> Frame | None:
        """The next valid frame, or None on timeout, after rejecting a bad one, when a
        subscriber joined (`take_joined`), or when one of `wake` is ready first: a
        socket (a control request waits) or a file descriptor (audio arrived, a key was
        pressed, a signal came); reading it is the caller's."""
        ready = dict(self._poller(wake).poll(timeout_ms))
        if self.pub in ready:
            self._take_subscriptions()
        if self.sub not in ready:
            return None
        return self.accept(self.sub.recv_multipart())

    def take_joined(self) -> bool:
        """Whether a subscriber joined since last asked: it has heard nothing yet (a
        heartbeat now tells it who we are rather than leave it waiting a period)."""
        joined, self.joined = self.joined, False
        return joined

    def _take_subscriptions(self) -> None:
        while True:
            try:
                message = self.pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if message[:1] == b"\x01":  # a subscription; b"\x00" is one ended
                self.joined = True

    def _poller(self, wake: tuple) -> zmq.Poller:
        if wake not in self._pollers:
            poller = self._pollers[wake] = zmq.Poller()
            for source in (self.sub, self.pub, *wake):
                poller.register(source, zmq.POLLIN)
        return self._pollers[wake]

    def accept(self, parts: list[bytes]) -> Frame | None:
        try:
            frame = frames.decode(parts)
        except FrameRejected as rejected:
            self.reject(rejected)
            return None
        if frame.src in self.heard and isinstance(frame.body, frames.Heartbeat):
            previous = self.heard[frame.src]
            if previous is not None and previous.pid and previous.pid != frame.body.pid:
                self.restarted.add(frame.src)
            self.heard[frame.src] = frame.body
        elif frame.src in self.heard and self.heard[frame.src] is None:
            self.heard[frame.src] = frames.Heartbeat(ready=False, pid=0)
        self._count_losses(frame)
        self.counters[f"received.{frame.topic}"] += 1
        return frame

    def reject(self, rejected: FrameRejected) -> None:
        key = f"rejected.{rejected.reason}"
        self.counters[key] += 1
        count = self.counters[key]
        if count <= 10 or count % _LOG_EVERY == 0:
            self.log.warning("frame rejected", reason=rejected.reason, detail=rejected.detail, count=count)

    def _count_losses(self, frame: Frame) -> None:
        key = (frame.src, frame.topic)
        last = self._last_seq.get(key)
        # A sequence that goes backwards means the peer restarted: start counting afresh.
        if last is not None and frame.seq > last + 1:
            self.counters["lost"] += frame.seq - last - 1
        self._last_seq[key] = frame.seq

    def heartbeat(self, ready: bool, state: str = "", cpus: list | None = None, progress: dict | None = None) -> None:
        self.publish(
            frames.Heartbeat(
                ready=ready,
                pid=os.getpid(),
                state=state,
                heard=self.heard_pids(),
                counters=dict(self.counters),
                cpus=list(cpus or []),
                progress=dict(progress or {}),
            )
        )

    def heard_pids(self) -> dict[str, int]:
        """What a heartbeat says we hear: the process each peer we listen to was last
        heard from, 0 for one not heard yet (so that it knows to beat again)."""
        return {source: beat.pid if beat is not None else 0 for source, beat in self.heard.items()}

    def heard_all(self) -> bool:
        return all(beat is not None for beat in self.heard.values())

    def close(self) -> None:
        self.pub.close()
        self.sub.close()
        self.context.term()
