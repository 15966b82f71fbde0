"""Every frame on the bus, defined once, and its wire codec.

A frame travels as a ZeroMQ multipart message of three parts:

    [topic, header, payload]

``topic`` is the frame type's name (SUB sockets filter on it), ``header`` is a
msgpack map holding the envelope and the typed body, and ``payload`` carries raw
bytes (16 kHz mono int16 PCM for audio) so audio is never re-encoded by msgpack.

The envelope carries what is needed to trace an utterance across processes:
schema version, source stage, sequence number per (source, topic), utterance id,
and ``marks`` -- monotonic nanosecond timestamps (CLOCK_MONOTONIC is shared by
every process on a host) that each stage adds to as the utterance passes. A frame
handed over reliably (bus/delivery.py) also names its consumer (``to``), its
delivery key (``key``: the same for the same content, so a re-sent frame is known),
its position in the stream of frames to that consumer (``pos``), and the consumer's
pid it was sent to (``to_pid``: a restarted consumer takes nothing meant for its
predecessor, which would come to it out of order).

Decoding never raises anything but :class:`FrameRejected`, with a short reason
that the stage runtime logs and counts.
"""

import dataclasses
import time
from dataclasses import dataclass, field
from typing import ClassVar

import msgpack

SCHEMA_VERSION = 2
MAX_FRAME_BYTES = 4 * 1024 * 1024  # 30 s of 16 kHz int16 audio is 960 KB
SAMPLE_RATE = 16_000


class FrameRejected(Exception):
    """A message that is not a valid frame; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def now_ns() -> int:
    return time.monotonic_ns()


def count(default: int = 0):
    """A field that counts or points (samples, characters): never negative."""
    return field(default=default, metadata={"min": 0})


# --- bodies ---------------------------------------------------------------


@dataclass
class AudioChunk:
    """capture -> vad: a fixed-size run of 16 kHz mono int16 samples (in the payload)."""

    TOPIC: ClassVar[str] = "audio"
    stream: str  # id of the recording or microphone session
    offset: int = count()  # index of the first sample within the stream


@dataclass
class StreamStart:
    """capture -> vad: a stream begins (or is taken up again at `offset`), in this format."""

    TOPIC: ClassVar[str] = "stream-start"
    stream: str
    offset: int = count()
    rate: int = 16_000
    width: int = 2  # bytes per sample
    channels: int = 1
    live: bool = True  # audio arrives as it is spoken (a microphone, or a replay at real time)


@dataclass
class StreamStop:
    """capture -> vad: the stream ended after `samples` samples; vad -> anyone (in its
    heartbeat's progress) how many utterances it held."""

    TOPIC: ClassVar[str] = "stream-stop"
    stream: str
    samples: int = count()


@dataclass
class Speech:
    """vad -> asr: one utterance's audio (in the payload), pre-roll included."""

    TOPIC: ClassVar[str] = "speech"
    stream: str
    start_sample: int = count()  # where the utterance's audio begins within the stream
    part: int = count()  # > 0 when a long utterance was split at Whisper's 30 s window
    last_part: bool = True
    # Where vad heard speech begin and end within the stream (a trace checks latency
    # against the recording with them, not against vad's own decision).
    onset_sample: int = count()
    end_sample: int = count()
    # How much of the audio Silero judged speech, in ms: evidence asr weighs before it
    # types a short transcript (Whisper invents words on breath and clicks, not on voice).
    voiced_ms: int = count()
    # Silero's verdict on each 32 ms window of the audio, in order: "#" speech, "." not.
    # asr finds the pause after a word in it (Whisper's word timings say only roughly
    # where a word ends: tiny.en gives a pause's silence to a word beside it).
    voicing: str = ""


@dataclass
class Guess:
    """vad -> asr: the audio an utterance will have if the pause that has just begun
    turns out to be its end (sent unreliably: asr may recognise it ahead, and uses the
    result only for a `speech` frame whose audio is the very same)."""

    TOPIC: ClassVar[str] = "guess"
    stream: str
    start_sample: int = count()
    part: int = count()
    ongoing: bool = False  # the audio so far of speech that goes on (for partials), not a pause


@dataclass
class Voice:
    """vad -> router: speech began (barge-in: a model's answer in progress may be cut)."""

    TOPIC: ClassVar[str] = "voice"
    stream: str
    offset: int = count()  # the sample where speech began
    live: bool = True  # the stream is spoken now: in a fast replay nothing is "during"


@dataclass
class Transcript:
    """asr -> router: what was said, or why nothing was."""

    TOPIC: ClassVar[str] = "transcript"
    text: str
    dropped: str = ""  # non-empty: the reason the text is not to be typed
    part: int = count()  # the speech's part: a long utterance split in two is one request
    last_part: bool = True
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    # The words of an utterance still being spoken that two recognitions in a row agreed
    # on: typed ahead, and the utterance's final transcript begins with them.
    partial: bool = False
    # The silence after each of the first words, in ms, from Whisper's word timings
    # (at most three): a mode's name counts as a prefix only when it stands apart.
    pauses_ms: list = field(default_factory=list)  # of int
    # The language the words are in (ISO 639-1: "en", "de"...), as asr recognised it;
    # the router reads commands and mode words in it (stages/router/languages/).
    language: str = ""


@dataclass
class Request:
    """router -> instruct / thinking: what a language model is asked to do with an utterance."""

    TOPIC: ClassVar[str] = "request"
    mode: str  # clarify, chat or converse
    text: str  # the utterance, mode prefix removed
    lead: str = ""  # typed before the first answer character (a space, or nothing)
    # chat and converse: which conversation the utterance continues (the router counts
    # them up on "new conversation"; each mode keeps its own)
    conversation: int = 0
    # The utterance's language (ISO 639-1): a rewrite keeps it, an answer is given in it.
    # Empty: unknown (the model answers in the language it is spoken to).
    language: str = ""


@dataclass
class Cancel:
    """router -> instruct / thinking: stop answering the utterance ``utt`` (the envelope's):
    the user spoke again while it was being answered, or said "stop"."""

    TOPIC: ClassVar[str] = "cancel"
    reason: str = ""


@dataclass
class Keystrokes:
    """instruct, thinking -> router -> keys: erase ``backspaces`` characters, then type
    ``text``. A model's answer arrives as many of these, one per streamed piece; the
    router passes them on to keys in the order utterances were spoken."""

    TOPIC: ClassVar[str] = "keystrokes"
    text: str
    backspaces: int = count()
    final: bool = True  # the last keystrokes of this utterance
    offset: int = count()  # where `text` starts in this utterance's output, so a re-sent piece is typed once
    by: str = ""  # the stage whose words these are (router for dictation, or a model stage)
    # The utterance whose text the backspaces erase ("scratch that"): keys erases no
    # more of it than reached the app, so text the app never got costs the user none of theirs.
    erases: str = ""


@dataclass
class Generation:
    """instruct / thinking -> anyone: how one request went, for the trace and the bench."""

    TOPIC: ClassVar[str] = "generation"
    mode: str
    outcome: str  # answered, rewritten, fallback, cancelled, failed, guard
    prompt_tokens: int = 0
    tokens: int = 0
    ttft_ms: float = 0.0  # request received -> first generated token
    first_typed_ms: float = 0.0  # request received -> first token sent to be typed
    tokens_per_s: float = 0.0
    total_ms: float = 0.0
    detail: str = ""


@dataclass
class Typed:
    """keys -> anyone: what the sink really typed for an utterance (a report, not a
    delivery `Ack`).

    Reports are idempotent: a listener rebuilds each utterance's output by position.
    `text` begins at `offset` in what the sink received for the utterance; the report
    of a piece that arrived again (re-sent after a restart) also carries, in `already`,
    all the sink had received for the utterance before `text`. A listener that missed
    the first report can still learn the text, and one that has it ignores what it
    already knows."""

    TOPIC: ClassVar[str] = "typed"
    text: str  # typed just now
    # Erased before the utterance's text. keys erases once per utterance; the report
    # of a repeated piece says again how many were erased.
    backspaces: int = count()
    error: str = ""
    by: str = ""  # the stage whose keystrokes these were
    final: bool = True
    offset: int = count()  # where `text` begins in what the sink received for this utterance
    already: str = ""  # a repeated piece: what the sink had received for the utterance before `text`
    # Characters of what the sink received for the utterance that keys cannot vouch
    # for: it was killed while typing them (one chunk), so the app may lack some of them.
    in_doubt: int = count()
    # Why this piece was kept, not typed ("said 14 s ago"): it is held until
    # `voxkey held type`, `copy` or `drop`; empty for a piece typed or refused.
    held: str = ""

    def unseen(self, known: str) -> str:
        """What this report adds to the `known` output of its utterance: the part of
        `already` + `text` past the end of `known`. If it begins beyond `known` (a report
        was missed and not repeated), it is all added, as the sink had it."""
        start = self.offset - len(self.already)
        return (self.already + self.text)[max(0, len(known) - start) :]


@dataclass
class Ack:
    """consumer -> producer (the envelope's ``to``): frames of ``topic`` it is done with,
    by delivery key, or every frame it was sent up to position ``through`` (audio,
    acknowledged by the first sample vad still needs)."""

    TOPIC: ClassVar[str] = "ack"
    topic: str
    keys: list = field(default_factory=list)
    through: int = -1


@dataclass
class Start:
    """cli -> capture: begin streaming (sent once every stage reports ready)."""

    TOPIC: ClassVar[str] = "start"


@dataclass
class Heartbeat:
    """Every participant, once a period (`bus.heartbeat_s`) and at once on news: liveness,
    readiness, progress and counters."""

    TOPIC: ClassVar[str] = "heartbeat"
    ready: bool
    pid: int
    state: str = ""  # stage-specific, e.g. "waiting", "streaming", "done"
    heard: dict = field(default_factory=dict)  # stage -> the pid of it this participant hears
    counters: dict = field(default_factory=dict)
    cpus: list = field(default_factory=list)
    progress: dict = field(default_factory=dict)  # stage-specific positions, e.g. vad's committed audio
    # stage -> frames of its current process found missing: it sends again (bus/delivery.py)
    missed: dict = field(default_factory=dict)
    # consumer -> the position of the last reliable frame sent to it: re-sends begin at or below
    sent_through: dict = field(default_factory=dict)
    # Round trips, timed on heartbeats with no clocks compared across hosts: `at` is the
    # sender's time.monotonic(); `echo` gives back each peer's last `at` plus how long it
    # was held here, so that peer's round trip is its time on arrival minus it.
    at: float = 0.0
    echo: dict = field(default_factory=dict)  # peer -> its `at` + seconds held before this beat
    round_trip_ms: dict = field(default_factory=dict)  # peer -> the last round trip measured to it


BODY_TYPES = {
    body.TOPIC: body
    for body in (AudioChunk, StreamStart, StreamStop, Speech, Guess, Voice, Transcript, Request, Cancel)
    + (Keystrokes, Generation, Typed, Ack, Start, Heartbeat)
}


# --- envelope ---------------------------------------------------------------


@dataclass
class Frame:
    body: object
    src: str
    seq: int = 0
    utt: str = ""
    marks: dict = field(default_factory=dict)
    payload: bytes = b""
    to: str = ""  # reliable frames: the consumer
    to_pid: int = 0  # reliable frames: the consumer's process it was sent to (not a predecessor)
    key: str = ""  # reliable frames: the delivery key
    pos: int = 0  # reliable frames: position in the stream of frames to `to`

    @property
    def topic(self) -> str:
        return self.body.TOPIC

    @property
    def reliable(self) -> bool:
        return bool(self.key)


def encode(frame: Frame) -> list[bytes]:
    header = {
        "v": SCHEMA_VERSION,
        "src": frame.src,
        "seq": frame.seq,
        "utt": frame.utt,
        "marks": frame.marks,
        "to": frame.to,
        "to_pid": frame.to_pid,
        "key": frame.key,
        "pos": frame.pos,
        "body": dataclasses.asdict(frame.body),
    }
    return [frame.topic.encode(), msgpack.packb(header, use_bin_type=True), frame.payload]


_ENVELOPE = {
    "v": int,
    "src": str,
    "seq": int,
    "utt": str,
    "marks": dict,
    "to": str,
    "to_pid": int,
    "key": str,
    "pos": int,
    "body": dict,
}
_FIELD_TYPES = {int: (int,), float: (float, int), str: (str,), bool: (bool,), list: (list,), dict: (dict,)}


def decode(parts: list[bytes]) -> Frame:
    """Parse one multipart message, or raise FrameRejected saying why not."""
    if len(parts) != 3:
        raise FrameRejected("bad_parts", f"expected 3 message parts, got {len(parts)}")
    size = sum(len(part) for part in parts)
    if size > MAX_FRAME_BYTES:
        raise FrameRejected("oversized", f"{size} bytes > {MAX_FRAME_BYTES}")
    topic_bytes, header_bytes, payload = parts
    try:
        topic = topic_bytes.decode()
    except UnicodeDecodeError:
        raise FrameRejected("bad_topic", "topic is not UTF-8") from None
    body_type = BODY_TYPES.get(topic)
    if body_type is None:
        raise FrameRejected("unknown_topic", repr(topic[:40]))
    try:
        header = msgpack.unpackb(header_bytes, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises many types for garbage
        raise FrameRejected("bad_msgpack", type(error).__name__) from None
    if not isinstance(header, dict):
        raise FrameRejected("bad_header", "header is not a map")
    if header.get("v") != SCHEMA_VERSION:
        raise FrameRejected("bad_version", f"schema version {header.get('v')!r}, expected {SCHEMA_VERSION}")
    _check_fields("envelope", header, _ENVELOPE)
    marks = header["marks"]
    if not all(isinstance(k, str) and type(v) is int for k, v in marks.items()):
        raise FrameRejected("bad_field", "marks must map names to integer nanoseconds")
    _check_contents(topic, header["body"])
    body_fields = {f.name: f.type for f in dataclasses.fields(body_type)}
    required = {
        f.name
        for f in dataclasses.fields(body_type)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    _check_fields(topic, header["body"], body_fields, required)
    _check_counts(topic, header["body"], body_type)
    return Frame(
        body=body_type(**header["body"]),
        src=header["src"],
        seq=header["seq"],
        utt=header["utt"],
        marks=marks,
        payload=payload,
        to=header["to"],
        to_pid=header["to_pid"],
        key=header["key"],
        pos=header["pos"],
    )


def _check_counts(where: str, body: dict, body_type) -> None:
    for spec in dataclasses.fields(body_type):
        if "min" in spec.metadata and body.get(spec.name, 0) < spec.metadata["min"]:
            raise FrameRejected("bad_field", f"{where}.{spec.name} is negative")


# What a list or map field of a body may hold: flat values only, so a frame that decodes
# also encodes, and a stage reading `progress["committed"]` gets a number or a name.
_FLAT = (str, int, float, bool)


def _check_contents(where: str, body: dict) -> None:
    for name, value in body.items():
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if not isinstance(key, (str, int)) or not isinstance(item, _FLAT):
                raise FrameRejected("bad_field", f"{where}.{name} must hold plain values")
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise FrameRejected("bad_field", f"{where}.{name} is not a finite number")


def _check_fields(where: str, data: dict, types: dict, required=None) -> None:
    required = types.keys() if required is None else required
    missing = [name for name in required if name not in data]
    if missing:
        raise FrameRejected("missing_field", f"{where}: {', '.join(missing)}")
    for name, value in data.items():
        if name not in types:
            raise FrameRejected("unknown_field", f"{where}.{name}")
        allowed = _FIELD_TYPES[types[name]]
        # bool is an int in Python: never let True pass as a number or vice versa
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise FrameRejected("bad_field", f"{where}.{name} is {type(value).__name__}")
