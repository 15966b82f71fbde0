"""The pipeline's wiring, declared once: what each stage consumes, and from whom.

    capture --stream-start, audio, stream-stop--> vad --speech, guess--> asr
    asr --transcript--> router --keystrokes--> keys
    router --request (by mode), cancel--> instruct | thinking --keystrokes--> router
    vad --voice--> router                       cli --start--> capture (a replay)

Everything else is derived from `LINKS`: the topics a stage subscribes to, the stages
it listens to (the producers of what it consumes, and the consumers of what it hands
over reliably, whose acknowledgements come back on their own sockets), and the
consumer of each frame a stage hands over. `generation` and `typed` are reports for
whoever follows the pipeline (`voxkey up`, a replay, the bench), consumed by no stage.
"""

from dataclasses import dataclass

from bus.frames import (
    AudioChunk,
    Cancel,
    Guess,
    Keystrokes,
    Request,
    Speech,
    Start,
    StreamStart,
    StreamStop,
    Transcript,
    Voice,
)

STAGES = ("capture", "vad", "asr", "router", "instruct", "thinking", "keys")
# The command's own place on the bus, when a replay starts capture and follows keys.
CLI = "cli"
# Which model stage serves each mode that is not plain dictation.
MODEL_STAGES = {"clarify": "instruct", "chat": "instruct", "converse": "thinking"}


@dataclass(frozen=True)
class Link:
    producer: str
    topics: tuple[str, ...]
    consumers: tuple[str, ...]
    reliable: bool  # handed over (bus/delivery.py) rather than published at most once


LINKS = (
    Link("cli", (Start.TOPIC,), ("capture",), reliable=False),
    Link("capture", (StreamStart.TOPIC, AudioChunk.TOPIC, StreamStop.TOPIC), ("vad",), reliable=True),
    Link("vad", (Speech.TOPIC,), ("asr",), reliable=True),
    Link("vad", (Guess.TOPIC,), ("asr",), reliable=False),
    Link("vad", (Voice.TOPIC,), ("router",), reliable=False),
    Link("asr", (Transcript.TOPIC,), ("router",), reliable=True),
    Link("router", (Request.TOPIC,), tuple(dict.fromkeys(MODEL_STAGES.values())), reliable=True),
    Link("router", (Cancel.TOPIC,), tuple(dict.fromkeys(MODEL_STAGES.values())), reliable=False),
    Link("instruct", (Keystrokes.TOPIC,), ("router",), reliable=True),
    Link("thinking", (Keystrokes.TOPIC,), ("router",), reliable=True),
    Link("router", (Keystrokes.TOPIC,), ("keys",), reliable=True),
)


# (producer, topic) -> the one consumer of what it hands over: looked up for every
# reliable frame (each audio frame, each piece of an answer), so made once here.
_CONSUMER = {
    (link.producer, topic): link.consumers[0]
    for link in LINKS
    if link.reliable and len(link.consumers) == 1
    for topic in link.topics
}


def consumes(stage: str) -> tuple[str, ...]:
    """The topics `stage` subscribes to, in the order the links name them."""
    return tuple(dict.fromkeys(topic for link in LINKS if stage in link.consumers for topic in link.topics))


def listens_to(stage: str) -> tuple[str, ...]:
    """The stages `stage` subscribes to: the producers of what it consumes and the
    consumers of what it hands over. The command is not among them: a run that has it
    on the bus says so in the stage's `listen` setting."""
    heard = [link.producer for link in LINKS if stage in link.consumers]
    heard += [consumer for link in LINKS if link.producer == stage and link.reliable for consumer in link.consumers]
    return tuple(sorted({name for name in heard if name in STAGES}))


def consumer_of(producer: str, topic: str, mode: str = "") -> str:
    """Who takes over a frame of `topic` that `producer` hands over reliably; a request
    goes to the model stage of its `mode`."""
    if topic == Request.TOPIC:
        return MODEL_STAGES[mode]
    try:
        return _CONSUMER[producer, topic]
    except KeyError:
        raise KeyError(f"{producer} hands over no {topic!r} frames (bus/wiring.py)") from None
