"""Fuzzing the frame decoder: whatever arrives, decode() returns a frame that survives
a round trip or raises FrameRejected, and a peer counts every rejection.

Over 100,000 generated messages in all (FUZZ_MESSAGES), derandomized so every run
sees the same ones. Hypothesis' own overhead is per example (a message per example
would take minutes), so each example is a valid header and a seed, and a batch of
messages is spoiled from it. Then a few thousand hostile messages at a real router.
"""

import collections
import copy
import dataclasses
import math
import random
import struct
import time

import msgpack
import pytest
from conftest import LoneStage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import frames
from bus.frames import MAX_FRAME_BYTES, FrameRejected, decode, encode
from bus.peer import Peer

TOPICS = sorted(frames.BODY_TYPES)
BIG = b"\0" * (MAX_FRAME_BYTES + 1)
BATCH = 25  # messages made from each generated example


class QuietLog:
    def warning(self, *args, **kwargs):
        pass


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    run_dir.chmod(0o700)
    peer = Peer("fuzz", {"bus": {"run_dir": str(run_dir)}, "stages": {}}, [], [], QuietLog())
    yield peer
    peer.close()


def rejections(peer: Peer) -> int:
    return sum(count for key, count in peer.counters.items() if key.startswith("rejected."))


def check(peer: Peer, parts: list[bytes]) -> bool:
    """The property, for one message; True when it was rejected."""
    try:
        frame = decode(parts)
    except FrameRejected as rejected:
        assert rejected.reason and rejected.reason.isidentifier()
        frame = None
    if frame is not None:
        assert isinstance(frame.body, frames.BODY_TYPES[frame.topic])
        again = encode(frame)
        if sum(map(len, again)) > MAX_FRAME_BYTES:
            # Omitted defaults are written out: a frame at the limit may grow past it.
            with pytest.raises(FrameRejected, match="oversized"):
                decode(again)
        else:
            # Compared encoded: a NaN never equals itself, its encoding does.
            assert encode(decode(again)) == again
    before = rejections(peer)
    accepted = peer.accept(parts)
    assert (accepted is None) == (frame is None)
    assert rejections(peer) == before + (frame is None)
    return frame is None


def shown(parts: list[bytes]) -> list[bytes]:
    return [part if len(part) <= 80 else part[:80] + b"...%d bytes" % len(part) for part in parts]


def fuzz(peer: Peer, strategy, build, messages: int) -> tuple[int, int]:
    """Check `messages` messages, BATCH made by `build` from each example `strategy` draws.
    Returns (messages checked, rejected)."""
    seen = collections.Counter()

    @settings(
        max_examples=-(-messages // BATCH),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(strategy)
    def property(example):
        for parts in build(example):
            try:
                seen["rejected"] += check(peer, parts)
            except Exception as error:
                raise AssertionError(f"{type(error).__name__} for message {shown(parts)}") from error
            seen["messages"] += 1

    before = rejections(peer)
    started = time.monotonic()
    property()
    elapsed = time.monotonic() - started
    assert seen["messages"] >= messages
    assert rejections(peer) - before == seen["rejected"]
    print(
        f"{seen['messages']} messages ({seen['rejected']} rejected) in {elapsed:.1f} s: "
        f"{seen['messages'] / elapsed:.0f}/s"
    )
    return seen["messages"], seen["rejected"]


# --- hypothesis strategies: whole messages, and seeds for batches of them ------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=12),
)
FIELD_VALUES = {
    int: st.integers(-(2**63), 2**64 - 1),
    float: st.one_of(st.floats(), st.integers(-(2**63), 2**63)),
    str: st.text(max_size=16),
    bool: st.booleans(),
    list: st.lists(scalars, max_size=3),
    dict: st.dictionaries(st.text(max_size=6), scalars, max_size=3),
}
BODIES = list(frames.BODY_TYPES.values())

raw = st.lists(st.one_of(st.binary(max_size=48), st.sampled_from(TOPICS).map(str.encode)), max_size=5)


@st.composite
def valid_header(draw, body_type) -> dict:
    body = {}
    for f in dataclasses.fields(body_type):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required or draw(st.booleans()):
            body[f.name] = draw(FIELD_VALUES[f.type])
    return {
        "v": frames.SCHEMA_VERSION,
        "src": draw(st.text(max_size=10)),
        "seq": draw(FIELD_VALUES[int]),
        "utt": draw(st.text(max_size=16)),
        "marks": draw(st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1), max_size=4)),
        "to": draw(st.text(max_size=8)),
        "to_pid": draw(FIELD_VALUES[int]),
        "key": draw(st.text(max_size=8)),
        "pos": draw(FIELD_VALUES[int]),
        "body": body,
    }


@st.composite
def seeds(draw):
    """A valid header for a random frame type, and the randomness to spoil it with."""
    body_type = draw(st.sampled_from(BODIES))
    return body_type, draw(valid_header(body_type)), random.Random(draw(st.integers(0, 2**64 - 1)))


# --- spoiling a valid header, fast, from a seeded Random ---------------------------------

NASTY = [
    None, True, False, 0, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 0.0, -0.0, 1.5,
    math.nan, math.inf, -math.inf, "", "x" * 300, "\0", "é✓", b"", b"\xff\xfe", [], {}, [[[]]],
    {"a": {"b": [1]}}, [None] * 10, {"": None}, {b"k": 1}, {1: 2}, {None: 1},
    msgpack.ExtType(5, b"\0"), msgpack.Timestamp(0, 0), msgpack.Timestamp(2**34 - 1, 999_999_999),
]  # fmt: skip


def text(rng) -> str:
    ranges = [(32, 127), (0, 32), (0x80, 0xD800), (0xE000, 0x110000)]
    return "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(13)))


def garbage(rng, depth: int = 0):
    kind = rng.randrange(8 if depth < 4 else 6)
    if kind == 0:
        return copy.deepcopy(rng.choice(NASTY))  # spoil() may change it
    if kind == 1:
        return rng.getrandbits(64) - rng.choice([0, 2**63])
    if kind == 2:
        return struct.unpack("<d", rng.randbytes(8))[0]  # NaN payloads, subnormals, infinities
    if kind == 3:
        return text(rng)
    if kind == 4:
        return rng.randbytes(rng.randrange(16))
    if kind == 5:
        return rng.choice([True, False, None])
    if kind == 6:
        return [garbage(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice([text, lambda r: r.randbytes(3)])(rng): garbage(rng, depth + 1) for _ in range(rng.randrange(5))}


def spoil(rng, header):
    """One thing wrong with a header: a field dropped, added or of another type, a
    strange version, a body or a whole header that is not a map."""
    if not isinstance(header, dict):
        return header
    target = header["body"] if isinstance(header.get("body"), dict) and rng.random() < 0.6 else header
    names = list(target)
    action = rng.choice(["drop", "extra", "retype", "retype", "version", "marks", "body", "whole"])
    if action == "drop" and names:
        del target[rng.choice(names)]
    elif action == "extra":
        target[text(rng)] = garbage(rng)
    elif action == "retype" and names:
        target[rng.choice(names)] = garbage(rng)
    elif action == "version":
        header["v"] = rng.choice([0, 2, -1, 2**64 - 1, 1.0, True, "1", garbage(rng)])
    elif action == "marks":
        header["marks"] = {text(rng): garbage(rng) for _ in range(rng.randrange(3))}
    elif action == "body":
        header["body"] = garbage(rng)
    elif action == "whole":
        return garbage(rng)
    return header


def payload(rng, envelope: int) -> bytes:
    """Mostly small; sometimes exactly at the 4 MiB limit, one byte over, or far over."""
    size = rng.random()
    if size < 0.94:
        return rng.randbytes(rng.randrange(65))
    if size < 0.97:
        return BIG[: max(0, MAX_FRAME_BYTES - envelope)]
    return BIG[: MAX_FRAME_BYTES - envelope + 1] if size < 0.99 else BIG


def spoiled_messages(seed) -> list[list[bytes]]:
    body_type, base, rng = seed
    messages = []
    for _ in range(BATCH):
        header = {**base, "body": dict(base["body"])}
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            header = spoil(rng, header)
        topic = rng.choice([body_type.TOPIC] * 24 + TOPICS + [text(rng)]).encode()
        if rng.random() < 0.02:
            topic = rng.randbytes(rng.randrange(1, 12))
        packed = msgpack.packb(header, use_bin_type=rng.random() < 0.8)
        parts = [topic, packed, payload(rng, len(topic) + len(packed))]
        count = rng.choice([3] * 15 + [0, 1, 2, 4, 5])
        messages.append((parts + [rng.randbytes(4), b""])[:count])
    return messages


def corrupted_messages(seed) -> list[list[bytes]]:
    """A valid header's bytes cut short, overwritten, or with bytes slipped in."""
    body_type, base, rng = seed
    valid = msgpack.packb(base)
    messages = []
    for _ in range(BATCH):
        packed = bytearray(valid)
        for _ in range(rng.randrange(1, 5)):
            at = rng.randrange(len(packed) + 1)
            action = rng.choice(["cut", "flip", "insert"])
            if action == "cut":
                del packed[at:]
            elif action == "flip" and at < len(packed):
                packed[at] = rng.randrange(256)
            elif action == "insert":
                packed[at:at] = rng.randbytes(rng.randrange(1, 9))
        messages.append([body_type.TOPIC.encode(), bytes(packed), rng.randbytes(rng.randrange(17))])
    return messages


# --- the properties -------------------------------------------------------------

FUZZ_MESSAGES = {"raw": 40_000, "spoiled": 50_000, "corrupted": 15_000}


def test_at_least_a_hundred_thousand_messages():
    assert sum(FUZZ_MESSAGES.values()) >= 100_000


def test_random_bytes_are_rejected_never_raised(peer):
    fuzz(peer, st.lists(raw, min_size=BATCH, max_size=BATCH), list, FUZZ_MESSAGES["raw"])


def test_spoiled_headers_are_rejected_or_round_trip(peer):
    messages, rejected = fuzz(peer, seeds(), spoiled_messages, FUZZ_MESSAGES["spoiled"])
    assert 0.3 * messages < rejected < messages  # both outcomes well exercised


def test_corrupted_header_bytes_are_rejected_or_round_trip(peer):
    fuzz(peer, seeds(), corrupted_messages, FUZZ_MESSAGES["corrupted"])


def nested_heartbeat(depth: int) -> list[bytes]:
    """A heartbeat whose `heard` is `depth` lists deep: [[[...]]]."""
    heard = b"\x91" * depth + b"\x90"
    body = b"\x83\xa5ready\xc3\xa3pid\x01\xa5heard" + heard
    envelope = (
        b"\x8a\xa1v\x02\xa3src\xa0\xa3seq\x00\xa3utt\xa0\xa5marks\x80\xa2to\xa0\xa6to_pid\x00\xa3key\xa0\xa3pos\x00"
    )
    return [b"heartbeat", envelope + b"\xa4body" + body, b""]


def test_deeply_nested_garbage_never_raises(peer):
    for depth in (10, 100, 300, 1000, 100_000):
        before = rejections(peer)
        try:
            decode(nested_heartbeat(depth))
            rejected = False
        except FrameRejected:
            rejected = True
        peer.accept(nested_heartbeat(depth))
        assert rejections(peer) == before + rejected


def test_deeply_nested_garbage_is_rejected_or_round_trips(peer):
    for depth in (10, 100, 300, 1000):
        check(peer, nested_heartbeat(depth))


# --- a real stage under attack ------------------------------------------------------


def header(body=None, **envelope) -> bytes:
    fields = {
        "v": frames.SCHEMA_VERSION,
        "src": "asr",
        "seq": 0,
        "utt": "u",
        "marks": {},
        "to": "",
        "to_pid": 0,
        "key": "",
        "pos": 0,
        "body": {"text": "typed"} if body is None else body,
    }
    return msgpack.packb({**fields, **envelope})


def hostile_messages() -> list[tuple[list[bytes], str]]:
    """Messages the router subscribes to (each starts with a topic it asked for) that
    are all bad, each with the reason it must be rejected for."""
    good = header()
    kinds = [
        ([b"transcript", good], "bad_parts"),
        ([b"transcript", good, b"", b""], "bad_parts"),
        ([b"transcript", b"\xc1", b""], "bad_msgpack"),
        ([b"transcript", good[: len(good) // 2], b""], "bad_msgpack"),
        ([b"ack", b"", b""], "bad_msgpack"),
        ([b"transcript\xff", good, b""], "bad_topic"),
        ([b"transcripts", good, b""], "unknown_topic"),
        ([b"keystrokes-by-mallory", good, b""], "unknown_topic"),
        ([b"transcript", msgpack.packb(["not", "a", "map"]), b""], "bad_header"),
        ([b"transcript", header(v=99), b""], "bad_version"),
        ([b"transcript", header(body={"text": 5}), b""], "bad_field"),
        ([b"heartbeat", header(body={"ready": "yes", "pid": 1}), b""], "bad_field"),
        ([b"transcript", header(body={}), b""], "missing_field"),
        ([b"transcript", header(body={"text": "x", "rm": "-rf"}), b""], "unknown_field"),
    ]
    for parts, reason in [*kinds, OVERSIZED]:
        with pytest.raises(FrameRejected) as rejected:
            decode(parts)
        assert rejected.value.reason == reason, parts
    return kinds


OVERSIZED = ([b"transcript", header(), BIG], "oversized")


def test_router_survives_thousands_of_hostile_messages():
    kinds, rounds, oversized = hostile_messages(), 250, 20  # 3,520 messages
    expected = collections.Counter({f"rejected.{OVERSIZED[1]}": oversized})
    for _, reason in kinds:
        expected[f"rejected.{reason}"] += rounds
    stage = LoneStage("router", ["asr", "keys"])
    try:
        asr = stage.upstream["asr"]
        for _ in range(oversized):
            asr.pub.send_multipart(OVERSIZED[0])
        for _ in range(rounds):
            for parts, _ in kinds:
                asr.pub.send_multipart(parts)

        def counted() -> dict:
            return {key: stage.beat().counters.get(key, 0) for key in expected}

        deadline = time.monotonic() + 60
        while counted() != expected:
            assert stage.process.poll() is None, "router died under hostile messages"
            assert time.monotonic() < deadline, f"router counted {counted()}, expected {dict(expected)}"
            stage.downstream.receive(100)
        stage.send("asr", frames.Transcript(text="still here."), utt="after-attack", key="after-attack")
        got = stage.frames(lambda frame: frame.topic == "keystrokes" and frame.body.final, seconds=30)
        typed = "".join(frame.body.text for frame in got if frame.topic == "keystrokes")
        assert typed.strip().lower() == "still here."
        assert stage.process.poll() is None and stage.beat().counters.get("errors", 0) == 0
    finally:
        stderr = stage.close()
    assert "Traceback" not in stderr
