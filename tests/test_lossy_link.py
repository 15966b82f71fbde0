"""Delivery over a link that loses frames while both ends stay up (a tcp connection that
broke and came back): in-process, two stages whose every frame crosses the real wire
format, and a link that drops runs of them, both ways, where a seeded draw says.
Nothing is taken twice, nothing is lost, and the order holds, found by accounting
(bus/peer.py, bus/delivery.py) with no timer anywhere: each round is one heartbeat of
each side. The same over a real network boundary: tests/test_network_link.py."""

import random

import pytest
from harness import Harness

from bus import frames as wire
from bus.frames import Frame, Heartbeat, Transcript
from bus.stage import Stage


class Teller(Stage):
    """Hands transcripts to the router, as asr does."""

    name = "asr"

    def tell(self, text: str) -> None:
        self.publish(Transcript(text=text), utt=text, key=text)


class Taker(Stage):
    """Takes them, as the router does, and keeps what it took, in order."""

    name = "router"

    def setup(self) -> None:
        self.taken: list[str] = []

    def handle(self, frame: Frame) -> None:
        self.taken.append(frame.body.text)


class Link:
    """Moves what each side sent to the other through encode and decode, dropping what
    a side sends while its way is down (ZeroMQ loses what a broken connection held)."""

    def __init__(self, *ends: Harness):
        self.ends = ends
        self.down_from: set[str] = set()  # the senders whose frames are lost

    @property
    def down(self) -> bool:
        return bool(self.down_from)

    @down.setter
    def down(self, down: bool) -> None:
        self.down_from = {end.stage.name for end in self.ends} if down else set()

    def beat(self) -> None:
        for end in self.ends:
            stage = end.stage
            body = stage.peer.beat(True, sent_through=stage.delivery.sent_through())
            stage.peer.send(Frame(body=body, src=stage.name))

    def carry(self) -> None:
        for end, other in (self.ends, self.ends[::-1]):
            sent, end.stage.peer.sent = end.stage.peer.sent, []
            for frame in sent if end.stage.name not in self.down_from else ():
                other.stage.arrive(other.stage.peer.take(wire.decode(wire.encode(frame))))
                other.run()

    def round(self) -> None:
        self.beat()
        self.carry()


@pytest.fixture
def ends(tmp_path):
    teller = Harness(Teller, tmp_path / "asr")
    taker = Harness(Taker, tmp_path / "router")
    link = Link(teller, taker)
    link.round()  # each has heard the other once: counting starts
    return teller, taker, link


def test_frames_lost_in_the_middle_come_again_in_order_and_once(ends):
    teller, taker, link = ends
    teller.stage.tell("one")
    link.carry()
    link.down = True
    teller.stage.tell("two")
    teller.stage.tell("three")
    link.carry()
    link.down = False
    teller.stage.tell("four")  # arrives after a gap: set aside until "two" comes again
    link.carry()
    assert taker.stage.taken == ["one"]
    for _ in range(3):
        link.round()
    assert taker.stage.taken == ["one", "two", "three", "four"]
    assert teller.stage.delivery.pending("router") == []
    assert teller.stage.peer.counters["resent_after_loss"] >= 3


def test_the_last_frames_before_the_link_broke_are_found_missing_by_the_next_heartbeat(ends):
    teller, taker, link = ends
    link.down = True
    teller.stage.tell("only")
    link.carry()
    link.down = False
    link.round()  # the heartbeat says one transcript was sent: it never came
    assert taker.stage.peer.missed["asr"] == 1
    link.round()  # the router's heartbeat says so; asr sends it again
    link.carry()
    assert taker.stage.taken == ["only"] and teller.stage.delivery.pending("router") == []


def test_a_lost_acknowledgement_is_made_good_without_taking_the_frame_twice(ends):
    teller, taker, link = ends
    teller.stage.tell("said once")
    link.down_from = {"router"}  # the transcript arrives; the acknowledgement back is lost
    link.carry()
    assert taker.stage.taken == ["said once"] and teller.stage.delivery.pending("router") != []
    link.down = False
    for _ in range(3):
        link.round()
    assert taker.stage.taken == ["said once"]
    assert teller.stage.delivery.pending("router") == []
    # asr's heartbeat said it missed a frame of the router's: the router acknowledged
    # again what it had done, and nothing had to be sent again
    assert teller.stage.peer.missed["router"] >= 1
    assert teller.stage.peer.counters["resent_after_loss"] == taker.stage.peer.counters["repeats"] == 0


@pytest.mark.parametrize("seed", [1, 7, 22, random.randrange(1 << 30)])
def test_under_any_pattern_of_outages_everything_is_taken_once_in_order(ends, seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    teller, taker, link = ends
    said = [f"utterance {number}" for number in range(60)]
    for text in said:
        teller.stage.tell(text)
        if rng.random() < 0.15:
            link.down = not link.down  # a connection breaks, or comes back
        link.carry() if rng.random() < 0.7 else link.round()
    link.down = False
    for _ in range(6):
        link.round()
    assert taker.stage.taken == said
    assert teller.stage.delivery.pending("router") == []
    assert isinstance(taker.stage.peer.beat(True), Heartbeat)
