"""One participant's view of the bus: its publishing socket, its subscriptions (Peer),
and the bookkeeping every participant needs (Accounts: who it hears, sequence numbers,
rejections, losses).

Losses are found by accounting, not by waiting: every frame is numbered in its topic,
and every heartbeat says how many frames of each topic its sender has sent, so a frame
that never arrived shows as a gap in the numbers, or as fewer arrived than the next
heartbeat says were sent (the last frames before a link went down). ZeroMQ drops what
a connection held when it breaks; over ipc:// nothing is ever missed."""

import os
import time
from collections import Counter

import zmq

from bus import frames, placement, sockets
from bus.control import PeerLink
from bus.frames import Frame, FrameRejected

# Log the first few rejections of each kind, then one in this many, so a flood of
# garbage cannot flood the log too.
_LOG_EVERY = 1000


class Accounts:
    """What a participant keeps of the others, sockets aside: the process it hears of
    each, the numbers of what it sends, and what it rejected or found missing."""

    def __init__(self, name: str, listen: list[str], topics: list[str], log):
        self.name = name
        self.log = log
        self.counters: Counter = Counter()
        self.heard: dict[str, frames.Heartbeat | None] = {source: None for source in listen}
        self.restarted: set[str] = set()  # peers seen with a new pid since last asked
        self.missed: Counter = Counter()  # peer -> frames of its current process not taken
        self.gaps: set[str] = set()  # peers found to have lost frames since last asked
        self.topics = sorted(set(topics) | {frames.Heartbeat.TOPIC, frames.Ack.TOPIC})  # subscribed
        self._next_seq: Counter = Counter()
        self._last_seq: dict[tuple[str, str], int] = {}
        # peer -> (the `at` of its last heartbeat, our time.monotonic() when it came), to echo
        self._beat_times: dict[str, tuple[float, float]] = {}
        self.round_trip_s: dict[str, float] = {}  # peer -> the last round trip timed to it

    def number(self, frame: Frame) -> None:
        """Number a frame about to be sent in its topic (a re-sent frame is numbered
        anew: the numbers count what was sent, so a receiver can count losses)."""
        frame.seq = self._next_seq[frame.topic]
        self._next_seq[frame.topic] += 1
        self.counters[f"sent.{frame.topic}"] += 1

    def take(self, frame: Frame, now: float | None = None) -> Frame:
        """Account for a frame received: a peer's heartbeat (its time: `now`, default
        time.monotonic(), read for heartbeats only), a restart, losses."""
        if frame.src in self.heard and isinstance(frame.body, frames.Heartbeat):
            self._time(frame.src, frame.body, time.monotonic() if now is None else now)
            previous = self.heard[frame.src]
            if previous is not None and previous.pid and previous.pid != frame.body.pid:
                self.restarted.add(frame.src)
                self._forget(frame.src)
            self._count_unseen(frame.src, frame.body)
            self.heard[frame.src] = frame.body
        elif frame.src in self.heard and self.heard[frame.src] is None:
            self.heard[frame.src] = frames.Heartbeat(ready=False, pid=0)
        self._count_losses(frame)
        self.counters[f"received.{frame.topic}"] += 1
        return frame

    def pid_of(self, name: str) -> int:
        beat = self.heard.get(name)
        return beat.pid if beat is not None else 0

    def hears_me(self, name: str) -> bool:
        """Whether `name`'s latest heartbeat says it hears this very process."""
        beat = self.heard.get(name)
        return beat is not None and beat.heard.get(self.name) == os.getpid()

    def reject(self, rejected: FrameRejected) -> None:
        key = f"rejected.{rejected.reason}"
        self.counters[key] += 1
        count = self.counters[key]
        if count <= 10 or count % _LOG_EVERY == 0:
            self.log.warning("frame rejected", reason=rejected.reason, detail=rejected.detail, count=count)

    def _time(self, source: str, beat: frames.Heartbeat, now: float) -> None:
        """Keep when `source`'s heartbeat came, to echo its `at`; time the round trip to
        it from the `at` of ours it echoes (held time added: both are on our clock)."""
        self._beat_times[source] = (beat.at, now)
        echoed = beat.echo.get(self.name)
        # 0 < echoed: a heartbeat without a time (`at` 0) times nothing.
        if isinstance(echoed, int | float) and 0 < echoed <= now:
            self.round_trip_s[source] = now - echoed

    def echoes(self, now: float) -> dict[str, float]:
        """What our heartbeat gives back: each peer's last `at`, plus how long we held it."""
        return {source: at + (now - came) for source, (at, came) in self._beat_times.items() if at > 0}

    def round_trip_ms(self) -> dict[str, float]:
        return {source: round(seconds * 1000, 3) for source, seconds in self.round_trip_s.items()}

    def links(self, now: float) -> dict[str, PeerLink]:
        """Each peer whose heartbeat we heard, as a stage's `status` tells of it."""
        timed = self.round_trip_ms()
        return {
            source: PeerLink(self.heard[source].ready, now - came, timed.get(source))
            for source, (_, came) in self._beat_times.items()
        }

    def _count_losses(self, frame: Frame) -> None:
        key = (frame.src, frame.topic)
        last = self._last_seq.get(key)
        # A sequence that goes backwards means the peer restarted: start counting afresh.
        if last is not None and frame.seq > last + 1:
            self._lost(frame.src, frame.seq - last - 1)
        self._last_seq[key] = frame.seq

    def _count_unseen(self, source: str, beat: frames.Heartbeat) -> None:
        """Frames `source` says it sent (its heartbeat's counters) and that never came:
        the heartbeat travels behind them on the same connection. The first heartbeat
        heard sets where counting starts: what was sent before it, before this process
        subscribed, was never meant to reach it."""
        for topic in self.topics:
            sent = beat.counters.get(f"sent.{topic}", 0)
            if topic == frames.Heartbeat.TOPIC or not isinstance(sent, int):
                continue  # a heartbeat's own number is counted when it arrives
            key = (source, topic)
            last = self._last_seq.setdefault(key, sent - 1)
            if last < sent - 1:
                self._lost(source, sent - 1 - last)
                self._last_seq[key] = sent - 1

    def _lost(self, source: str, count: int) -> None:
        self.counters["lost"] += count
        if source in self.heard:
            self.missed[source] += count
            self.gaps.add(source)

    def _forget(self, source: str) -> None:
        """A peer restarted: its new process numbers its frames afresh."""
        self.missed.pop(source, None)
        self.gaps.discard(source)
        for key in [key for key in self._last_seq if key[0] == source]:
            del self._last_seq[key]

    def take_gaps(self) -> set[str]:
        """The peers found to have lost frames since last asked."""
        gaps, self.gaps = self.gaps, set()
        return gaps

    def beat(
        self,
        ready: bool,
        state: str = "",
        cpus: list | None = None,
        progress: dict | None = None,
        sent_through: dict | None = None,
        now: float | None = None,
    ) -> frames.Heartbeat:
        """This participant's heartbeat, sent at `now` (default time.monotonic()): what it
        hears, its counters, what it missed, and what times the round trip of each link."""
        now = time.monotonic() if now is None else now
        return frames.Heartbeat(
            ready=ready,
            pid=os.getpid(),
            state=state,
            heard=self.heard_pids(),
            counters=dict(self.counters),
            cpus=list(cpus or []),
            progress=dict(progress or {}),
            missed=dict(self.missed),
            sent_through=dict(sent_through or {}),
            at=now,
            echo=self.echoes(now),
            round_trip_ms=self.round_trip_ms(),
        )

    def heard_pids(self) -> dict[str, int]:
        """What a heartbeat says we hear: the process each peer we listen to was last
        heard from, 0 for one not heard yet (so that it knows to beat again)."""
        return {source: beat.pid if beat is not None else 0 for source, beat in self.heard.items()}

    def heard_all(self) -> bool:
        return all(beat is not None for beat in self.heard.values())


class Peer(Accounts):
    def __init__(self, name: str, config: dict, listen: list[str], topics: list[str], log):
        super().__init__(name, listen, topics, log)
        self._pollers: dict[tuple, zmq.Poller] = {}  # what else wakes `receive` -> a poller of it and `sub`
        self.joined = False  # a subscriber joined since last asked (`take_joined`)
        self.context = zmq.Context()
        timeout_s = sockets.link_timeout_s(config)
        self.pub = None
        try:
            keys = placement.keys_of(config)  # None for a pipeline on one host
            hosts = placement.where(config, keys)
            audience = placement.audience(hosts, name)
            self.pub = sockets.publisher(self.context, sockets.endpoint(config, name, keys), keys, timeout_s, audience)
            publishers = {sockets.endpoint(config, source, keys): hosts.get(source, "") for source in listen}
            self.sub = sockets.subscriber(self.context, publishers, self.topics, keys, timeout_s)
        except BaseException:  # a refused endpoint: leave nothing open that would hang exit
            if self.pub is not None:
                self.pub.close(linger=0)
            self.context.term()
            raise

    def send(self, frame: Frame) -> None:
        """Put a frame on the wire, numbered in its topic."""
        self.number(frame)
        self.pub.send_multipart(frames.encode(frame), copy=False)

    def publish(self, body, *, utt: str = "", marks: dict | None = None, payload: bytes = b"") -> Frame:
        frame = Frame(body=body, src=self.name, utt=utt, marks=dict(marks or {}), payload=payload)
        self.send(frame)
        return frame

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

    def heartbeat(self, ready: bool, state: str = "", cpus: list | None = None, **more) -> None:
        self.publish(self.beat(ready, state, cpus, **more))

    def close(self) -> None:
        self.pub.close()
        self.sub.close()
        self.context.term()

    def accept(self, parts: list[bytes]) -> Frame | None:
        try:
            frame = frames.decode(parts)
        except FrameRejected as rejected:
            self.reject(rejected)
            return None
        return self.take(frame)
