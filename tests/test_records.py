"""Typed records (bus/records.py) and the wiring (bus/wiring.py): pure, no sockets."""

from dataclasses import dataclass, field

import pytest

from bus import wiring
from bus.frames import Keystrokes, Request
from bus.progress import CaptureProgress, KeysProgress, progress_of
from bus.records import RecordError, plain, require, typed
from stages.router.stage import Decided, RouterState


@dataclass
class Inner:
    count: int = 0
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    name: str
    inner: dict[str, Inner] = field(default_factory=dict)
    pair: tuple[str, int] | None = None
    ratio: float = 0.0

    def __post_init__(self):
        require(self.ratio >= 0, "ratio must not be negative")


def test_a_record_goes_to_plain_data_and_comes_back_the_same():
    record = Outer("a", {"k": Inner(2, ["x"])}, ("p", 3), 0.5)
    data = plain(record)
    assert data == {"name": "a", "inner": {"k": {"count": 2, "names": ["x"]}}, "pair": ["p", 3], "ratio": 0.5}
    assert typed(Outer, data) == record
    assert typed(Outer, {"name": "b", "ratio": 1}) == Outer("b", ratio=1.0)  # an int will do for a float


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"name": 1}, "Outer.name must be str, not int"),
        ({}, "Outer: name is missing"),
        ({"name": "a", "colour": "red"}, "Outer: no field colour"),
        ({"name": "a", "inner": {"k": {"count": True}}}, "Outer.inner['k'].count must be int, not bool"),
        ({"name": "a", "inner": []}, "Outer.inner must be a map, not list"),
        ({"name": "a", "pair": ["p"]}, "Outer.pair must be a list of 2, not list"),
        ({"name": "a", "ratio": -1}, "Outer: ratio must not be negative"),
        ("a", "Outer must be a map, not str"),
    ],
)
def test_data_that_does_not_make_the_record_is_refused_naming_the_field(data, said):
    with pytest.raises(RecordError) as refused:
        typed(Outer, data)
    assert str(refused.value) == said


def test_the_routers_remembered_decisions_are_records_of_frame_bodies():
    state = RouterState(
        mode="chat",
        typed=[("u1", "Hello.")],
        decided={"u1": Decided(keystrokes=Keystrokes("Hello.")), "u2": Decided(request=Request("chat", "Why?"))},
    )
    assert typed(RouterState, plain(state)) == state
    with pytest.raises(RecordError, match="must not be below 0"):
        typed(Decided, {"keystrokes": {"text": "x", "offset": -1}})


def test_progress_is_read_back_as_its_stages_record():
    said = KeysProgress(sink="wtype", reason="Wayland session", last_latency_ms=120)
    assert progress_of("keys", plain(said)) == said
    assert progress_of("capture", {}) is None  # still loading: nothing said yet
    assert progress_of("capture", {"listening": "yes"}) is None
    assert progress_of("capture", {"held": True}) == CaptureProgress(held=True)
    assert progress_of("asr", {"anything": 1}) is None  # asr reports no progress


def test_the_wiring_gives_each_stage_its_neighbours_and_each_reliable_frame_one_consumer():
    assert wiring.listens_to("capture") == ("vad",)  # acknowledgements of its audio
    assert wiring.listens_to("router") == ("asr", "instruct", "keys", "thinking", "vad")
    assert wiring.consumes("router") == ("voice", "transcript", "keystrokes")
    assert wiring.consumer_of("router", "request", mode="converse") == "thinking"
    assert wiring.consumer_of("instruct", "keystrokes") == "router"
    for link in wiring.LINKS:
        for stage in (link.producer, *link.consumers):
            assert stage in (*wiring.STAGES, wiring.CLI)
        if link.reliable and link.topics != ("request",):
            assert all(wiring.consumer_of(link.producer, topic) == link.consumers[0] for topic in link.topics)
    with pytest.raises(KeyError, match="keys hands over no 'typed' frames"):
        wiring.consumer_of("keys", "typed")
