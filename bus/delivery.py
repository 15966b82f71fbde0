"""Reliable hand-over between stages: nothing lost when a stage is killed, nothing done twice.

ZeroMQ PUB/SUB drops what a subscriber was not connected for (a restarted stage, a
slow joiner). Every topic that carries what the user said is therefore handed over
with acknowledgements, by this module alone; a stage only says which consumer a
frame is for (`to`) and gives it a delivery key that is the same whenever the same
content is made again (the utterance id, plus the offset of a piece of text).

Producer side, the **outbox**: a reliable frame stays in it until its consumer
acknowledges it. It is sent only once the consumer's heartbeat names this process's
pid (the consumer's subscription to us is live, and ours to it, so its acknowledgement
will be heard), addressed to the consumer's pid; when the consumer comes back with a
new pid, everything still pending for it is sent again, in order, to it alone. A
restarted consumer drops what was addressed to its predecessor (sent before the
producer learnt of the restart): taken, it would come before what the producer sends
again, out of order.

Consumer side, the **inbox**: a reliable frame is handled once. It is acknowledged
when the stage has handled it *and* every reliable frame it caused has been
acknowledged in turn (a cascade: vad forgets an utterance only once keys has typed
it, although vad hears only asr). A frame that comes again while it is being worked on
is ignored; one that comes again after it was acknowledged is acknowledged again
without being handled (the acknowledgement was lost, or the producer restarted).

A stage that keeps state (router, keys, vad) makes handling idempotent across its own
restarts with what it persists; a stateless one (asr, the model stages) simply does the
work again, and the keys make the result known downstream.

Acknowledgement by position: a stream (audio) is acknowledged by the consumer
saying how far it no longer needs it (`acknowledge_through`), not frame by frame.

**Over a network** frames are lost with both ends still up: a connection that broke
and came back loses what it held. The peers find it by accounting (bus/peer.py: a gap
in a topic's numbers, or fewer frames than a heartbeat says were sent). The consumer
then takes nothing more from that producer until what it sends again begins (a frame
no later than the last it has seen from it, or than the last the producer's heartbeat
says it sent): taken, the frames after the gap would come before the lost ones. Its
heartbeat says how many frames it missed or set aside; the producer, seeing the count
grow, sends again, in order, everything not acknowledged (`lost_on_the_way`), and
acknowledges again what it has done of the other's (an acknowledgement may have been
lost: every peer reports what it missed of every other). The inbox makes every repeat
harmless: the same frame is still handled once.
"""

import base64
import collections
from collections.abc import Callable
from dataclasses import dataclass

from bus import frames as wire
from bus.frames import Ack, Frame

DONE_REMEMBERED = 1000  # acknowledged inputs remembered, to acknowledge a repeat at once

Input = tuple[str, str, str]  # (producer, topic, key)


def input_of(frame: Frame) -> Input:
    return (frame.src, frame.topic, frame.key)


@dataclass
class Pending:
    frame: Frame
    cause: Input | None
    sent_to: int = 0  # the consumer's pid it was last sent to


class Delivery:
    """One stage's outbox and inbox. `send(frame)` puts a frame on the wire;
    `hears_me(name)` says whether that peer's latest heartbeat names our pid, and
    `pid_of(name)` which process of it that heartbeat came from."""

    def __init__(
        self,
        name: str,
        send: Callable[[Frame], None],
        hears_me: Callable[[str], bool],
        pid_of: Callable[[str], int],
        counters,
        log,
        run: str = "",
    ):
        self.name = name
        # A consumer on another host outlives a run here, and a replay of the same
        # recording makes the same keys: taken there for work done, they would be
        # dropped. Keys are the run's own (`bus.run_id`); a restarted stage keeps them.
        self.run = run
        self._send = send
        self._hears_me = hears_me
        self._pid_of = pid_of
        self.counters = counters
        self.log = log
        # consumer -> key -> pending, in the order of their positions (a frame made again
        # takes a new, later position), and the keys not yet sent to its current process
        self.outbox: dict[str, dict[str, Pending]] = collections.defaultdict(dict)
        self._unsent: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        self._next_pos: collections.Counter = collections.Counter()
        self.open: dict[Input, int] = {}  # input -> outputs still unacknowledged
        self.held: set[Input] = set()  # inputs the stage has not finished with
        self.done: collections.OrderedDict[Input, None] = collections.OrderedDict()
        self._acks: dict[str, list[Ack]] = collections.defaultdict(list)  # producer -> acks it cannot hear yet
        # producer -> the last position of its frames seen (taken, set aside, or said sent
        # in its heartbeat); and the producers whose frames are set aside after a loss,
        # until what they send again begins (at or below that position)
        self._seen_through: dict[str, int] = {}
        self._setting_aside: set[str] = set()
        self._sent_through: dict[str, int] = {}  # consumer -> the last position sent to it
        self._acknowledged_through: dict[tuple[str, str], int] = {}  # (producer, topic) -> position
        self._aside_at_last_look: set[str] = set()
        self._missing_reported: dict[str, int] = {}  # consumer -> frames it last said it missed

    # --- producing ----------------------------------------------------------

    def put(self, frame: Frame, cause: Input | None = None, position: int | None = None, send: bool = True) -> None:
        """Hand `frame` (with `to` and `key` set) over reliably; `cause` is the input it
        was made for, acknowledged only once this frame is. `position` orders it among
        the frames to its consumer (audio: the sample after it); by default, next. A
        frame with the key of one still pending replaces it (the same content, made
        again)."""
        if self.run:
            frame.key = f"{frame.key}/{self.run}"
        pending = self.outbox[frame.to]
        previous = pending.get(frame.key)
        if previous is not None:  # made again: it keeps its place, and goes once
            frame.pos = previous.frame.pos
            pending[frame.key] = Pending(frame, cause, previous.sent_to)
        else:
            if position is None:
                position = self._next_pos[frame.to] + 1
            self._next_pos[frame.to] = max(self._next_pos[frame.to], position)
            frame.pos = position
            pending[frame.key] = Pending(frame, cause)
            self._unsent[frame.to].append(frame.key)
        if cause is not None:
            self._settle(cause, +1)
        if previous is not None and previous.cause is not None:  # after: the same cause must not look done
            self._settle(previous.cause, -1)
        if send:
            self.flush(frame.to)

    def restore(self, frames: list[Frame]) -> None:
        """Frames a stage kept on disk across its restart: pending again, sent once heard."""
        for frame in sorted(frames, key=lambda f: f.pos):
            self.outbox[frame.to][frame.key] = Pending(frame, None)
            self._unsent[frame.to].append(frame.key)
            self._next_pos[frame.to] = max(self._next_pos[frame.to], frame.pos)

    def pending(self, consumer: str) -> list[Frame]:
        return [entry.frame for entry in self.outbox.get(consumer, {}).values()]

    def count(self, consumer: str) -> int:
        """How many frames `consumer` has not acknowledged (cheap: asked per audio frame)."""
        return len(self.outbox.get(consumer, {}))

    def trim(self, consumer: str, keep: int) -> int:
        """Forget the oldest frames pending for `consumer` beyond `keep` (a source that
        cannot wait, such as a microphone); returns how many."""
        pending = self.outbox.get(consumer, {})
        excess = max(0, len(pending) - keep)
        for key in list(pending)[:excess]:
            del pending[key]  # a key still in _unsent is skipped when flushed
        return excess

    def on_ack(self, frame: Frame) -> list[Frame]:
        """An acknowledgement from a consumer; returns the frames it settled."""
        ack: Ack = frame.body
        pending = self.outbox.get(frame.src, {})
        settled = [
            key
            for key, entry in pending.items()
            if (entry.frame.topic == ack.topic and key in ack.keys) or entry.frame.pos <= ack.through
        ]
        frames = []
        for key in settled:
            entry = pending.pop(key)
            frames.append(entry.frame)
            if entry.cause is not None:
                self._settle(entry.cause, -1)
        return frames

    def peer_restarted(self, name: str) -> None:
        """Everything pending for `name` goes again, to it alone, once it hears us; its
        frames to us are numbered afresh."""
        self._missing_reported.pop(name, None)
        self._seen_through.pop(name, None)
        self._setting_aside.discard(name)
        self._acknowledged_through = {k: v for k, v in self._acknowledged_through.items() if k[0] != name}
        pending = self.outbox.get(name, {})
        resent = sum(bool(entry.sent_to) for entry in pending.values())
        self._unsent[name] = collections.deque(pending)
        if resent:
            self.counters["resent"] += resent
            self.log.warning(
                "consumer restarted: sending again what it had not acknowledged", consumer=name, frames=resent
            )

    def lost_on_the_way(self, name: str) -> None:
        """Frames to or from `name` were lost while both stayed up: what it has not
        acknowledged goes again, in order (it handles each once, and acknowledges
        again what it had done)."""
        pending = self.outbox.get(name, {})
        for entry in pending.values():
            entry.sent_to = 0
        self._unsent[name] = collections.deque(pending)
        if pending:
            self.counters["resent_after_loss"] += len(pending)
            self.log.warning(
                "frames lost on the way: sending again what was not acknowledged", peer=name, frames=len(pending)
            )
        self.flush(name)

    def missing_reported(self, name: str, missed: int) -> None:
        """`name`'s heartbeat says how many frames of ours it missed: more than it said
        before, and what it has not acknowledged goes again, and what it sent us and we
        have done is acknowledged again (an acknowledgement may have been among them)."""
        if missed > self._missing_reported.get(name, 0):
            self.lost_on_the_way(name)
            self.acknowledge_again(name)
        self._missing_reported[name] = missed

    def acknowledge_again(self, producer: str) -> None:
        """Everything of `producer`'s we have done and still remember, in one
        acknowledgement per topic, and how far each stream was acknowledged."""
        done: dict[str, list[str]] = collections.defaultdict(list)
        for source, topic, key in self.done:
            if source == producer:
                done[topic].append(key)
        for topic, keys in done.items():
            self._queue_ack(producer, Ack(topic=topic, keys=keys))
        for (source, topic), through in self._acknowledged_through.items():
            if source == producer:
                self._queue_ack(producer, Ack(topic=topic, through=through))

    def heard_from(self, name: str) -> None:
        """A heartbeat from `name`: if it now hears us, what waited for it goes."""
        self.flush(name)

    def flush(self, name: str) -> None:
        """Send what waits for `name`, if it hears us."""
        if not self._hears_me(name):
            return
        for ack in self._acks.pop(name, []):
            self._send(Frame(body=ack, src=self.name, to=name))
        pending, unsent, pid = self.outbox.get(name, {}), self._unsent[name], self._pid_of(name)
        while unsent:
            entry = pending.get(unsent.popleft())
            if entry is not None and entry.sent_to != pid:  # acknowledged, forgotten or sent meanwhile
                entry.sent_to = entry.frame.to_pid = pid
                self._send(entry.frame)
                self._sent_through[name] = max(self._sent_through.get(name, -1), entry.frame.pos)

    # --- consuming ----------------------------------------------------------

    def lost_from(self, producer: str) -> None:
        """Frames of `producer` were lost: set aside what comes after them until what it
        sends again begins."""
        self._setting_aside.add(producer)

    def producer_sent_through(self, producer: str, position: int) -> None:
        """`producer`'s heartbeat: the last position it has sent us."""
        self._seen_through[producer] = max(self._seen_through.get(producer, -1), position)

    def in_order(self, frame: Frame) -> bool:
        """Whether a reliable frame may be taken: not one that came after frames lost
        from its producer (set aside, it comes again, in order, with them)."""
        seen = self._seen_through.get(frame.src, -1)
        self._seen_through[frame.src] = max(seen, frame.pos)
        if frame.src not in self._setting_aside:
            return True
        if frame.pos <= seen:  # what it sends again has begun
            self._setting_aside.discard(frame.src)
            return True
        self.counters["set_aside_after_a_loss"] += 1
        return False

    def still_setting_aside(self) -> set[str]:
        """The producers whose frames were being set aside at the last look too: what
        they sent again did not begin at or below what was seen (the oldest of it was
        dropped meanwhile). Asked once a heartbeat period; each is reported missing
        once more, so it sends again."""
        stuck = self._setting_aside & self._aside_at_last_look
        self._aside_at_last_look = set(self._setting_aside)
        return stuck

    def sent_through(self) -> dict[str, int]:
        """For a heartbeat: the last position sent to each consumer."""
        return dict(self._sent_through)

    def receive(self, frame: Frame) -> bool:
        """Whether a reliable frame is new work; a repeat is acknowledged again if it
        was done, and ignored while it is being worked on."""
        item = input_of(frame)
        if item in self.done:
            self.counters["repeats"] += 1
            self._acknowledge(item)
            return False
        if item in self.open:
            self.counters["repeats"] += 1
            return False
        self.open[item] = 0
        self.held.add(item)
        return True

    def handled(self, item: Input) -> None:
        """The stage has finished with `item`: it is done once what it caused is."""
        self.held.discard(item)
        self._settle(item, 0)

    def acknowledge_through(self, producer: str, topic: str, position: int) -> None:
        self._acknowledged_through[producer, topic] = position
        self._queue_ack(producer, Ack(topic=topic, through=position))

    def _settle(self, item: Input, change: int) -> None:
        if item not in self.open:
            return
        self.open[item] += change
        if self.open[item] <= 0 and item not in self.held:
            del self.open[item]
            self.done[item] = None
            while len(self.done) > DONE_REMEMBERED:
                self.done.popitem(last=False)
            self._acknowledge(item)

    def _acknowledge(self, item: Input) -> None:
        producer, topic, key = item
        self._queue_ack(producer, Ack(topic=topic, keys=[key]))

    def _queue_ack(self, producer: str, ack: Ack) -> None:
        waiting = self._acks[producer]
        if ack.through >= 0:  # a newer position says all an older one did
            waiting[:] = [a for a in waiting if not (a.topic == ack.topic and a.through >= 0)]
        waiting.append(ack)
        self.flush(producer)


def piece_key(utt: str, offset: int) -> str:
    """The delivery key of the keystrokes of an utterance's output from `offset` on: the
    same piece sent again, by the same producer, has the same key."""
    return f"{utt}+{offset}"


def partial_key(utt: str, words: int) -> str:
    """The delivery key of a partial transcript holding an utterance's first `words`."""
    return f"{utt}~{words}"


def freeze(frame: Frame) -> str:
    """A pending frame as text, for a stage that keeps its outbox in its state file."""
    return base64.b64encode(b"".join(_framed(part) for part in wire.encode(frame))).decode()


def thaw(text: str) -> Frame:
    """The frame `freeze` wrote; raises FrameRejected (or ValueError) if it is not one."""
    data, parts = base64.b64decode(text, validate=True), []
    while data:
        size = int.from_bytes(data[:4], "big")
        parts.append(data[4 : 4 + size])
        data = data[4 + size :]
    return wire.decode(parts)


def _framed(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + bytes(part)
