"""The frame codec: round trips, and every kind of bad message rejected with a reason."""

import msgpack
import pytest

from bus import frames
from bus.frames import Frame, FrameRejected, decode, encode

EXAMPLES = [
    frames.AudioChunk(stream="s", offset=512),
    frames.StreamStart(stream="s", offset=0, rate=16000, width=2, channels=1, live=False),
    frames.StreamStop(stream="s", samples=99),
    frames.Speech(stream="s", start_sample=16000, part=1, last_part=False, onset_sample=20800, end_sample=64000),
    frames.Guess(stream="s", start_sample=16000, part=1),
    frames.Voice(stream="s", offset=16000, live=True),
    frames.Transcript(text="héllo ✓", dropped="", no_speech_prob=0.25, avg_logprob=-0.3, part=1, last_part=False),
    frames.Request(mode="chat", text="what is the capital of France?", lead=" "),
    frames.Cancel(reason="new speech"),
    frames.Keystrokes(text="a\nb", backspaces=3, final=False, offset=7, by="instruct"),
    frames.Generation(
        mode="chat",
        outcome="answered",
        prompt_tokens=30,
        tokens=9,
        ttft_ms=61.5,
        first_typed_ms=62.0,
        tokens_per_s=80.1,
        total_ms=170.2,
    ),
    frames.Typed(text="x", backspaces=0, error=""),
    frames.Ack(topic="speech", keys=["s@000001000ms"], through=-1),
    frames.Start(),
    frames.Heartbeat(
        ready=True,
        pid=7,
        state="running",
        heard={"vad": 12},
        counters={"lost": 2},
        cpus=[0],
        progress={"utterances": 3},
    ),
]


@pytest.mark.parametrize("body", EXAMPLES, ids=lambda body: body.TOPIC)
def test_every_frame_type_round_trips(body):
    frame = Frame(
        body=body,
        src="vad",
        seq=41,
        utt="s@000001000ms",
        marks={"capture": 12, "vad": 34},
        payload=b"\x01\x02",
        to="asr",
        to_pid=4321,
        key="s@000001000ms",
        pos=3,
    )
    assert decode(encode(frame)) == frame


def test_every_frame_type_is_exercised():
    assert {body.TOPIC for body in EXAMPLES} == set(frames.BODY_TYPES)


def header(**changes):
    base = {
        "v": frames.SCHEMA_VERSION,
        "src": "asr",
        "seq": 0,
        "utt": "u",
        "marks": {},
        "to": "",
        "to_pid": 0,
        "key": "",
        "pos": 0,
        "body": {"text": "hi"},
    }
    base.update(changes)
    return msgpack.packb(base)


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([b"transcript", b"\xc1\xff garbage"], "bad_parts"),
        ([b"transcript", b"\xc1\xff garbage", b""], "bad_msgpack"),
        ([b"\xff\xfe", header(), b""], "bad_topic"),
        ([b"launch_missiles", header(), b""], "unknown_topic"),
        ([b"transcript", msgpack.packb([1, 2, 3]), b""], "bad_header"),
        ([b"transcript", header(v=99), b""], "bad_version"),
        ([b"transcript", header(v="1"), b""], "bad_version"),
        ([b"transcript", header(seq="zero"), b""], "bad_field"),
        ([b"transcript", header(body={"text": 5}), b""], "bad_field"),
        ([b"transcript", header(body={"text": "hi", "no_speech_prob": True}), b""], "bad_field"),
        ([b"transcript", header(body={}), b""], "missing_field"),
        ([b"transcript", header(body={"text": "hi", "rm": "-rf"}), b""], "unknown_field"),
        ([b"transcript", header(marks={"asr": "late"}), b""], "bad_field"),
        ([b"audio", header(body={"stream": "s", "offset": 0}), b"\0" * (frames.MAX_FRAME_BYTES + 1)], "oversized"),
        ([b"keystrokes", header(body={"text": "", "backspaces": -5}), b""], "bad_field"),
        ([b"audio", header(body={"stream": "s", "offset": -512}), b""], "bad_field"),
        ([b"transcript", header(key=7), b""], "bad_field"),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(parts, reason):
    with pytest.raises(FrameRejected) as rejected:
        decode(parts)
    assert rejected.value.reason == reason
