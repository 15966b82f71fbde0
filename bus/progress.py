"""What each stage says of itself in every heartbeat (`Heartbeat.progress`) and in its
`status` reply: one record per stage, written by the stage, read by whoever follows it
(`voxkey up`, `voxkey status`, a replay's accounting).

On the wire a progress is a flat map (bus/frames.py allows plain values only), made
with `bus.records.plain`; `progress_of(stage, heartbeat.progress)` reads it back as the stage's record.
Records are frozen: a stage says something new by making a new one, which is how its
runtime knows to announce it at once (bus/stage.py).
"""

from dataclasses import dataclass

from bus.records import RecordError, typed


@dataclass(frozen=True)
class CaptureProgress:
    listening: bool = True
    held: bool = False  # on only until `release` (push-to-talk)
    stream_started_ns: int = 0  # a recording's sample 0 was sent at this monotonic time
    hotkey: str = ""  # why the configured hotkey cannot be read; empty when it can


@dataclass(frozen=True)
class VadProgress:
    stream: str = ""
    utterances: int = 0  # cut from the stream so far
    ended: bool = False  # the stream stopped and its last utterance was cut
    refusing: str = ""  # why new speech is not taken (downstream stalled); empty while it is
    refused_ms: int = 0  # speech heard and not taken, since vad started
    speaking: bool = False  # inside speech now (onset heard, its end not yet): an indicator's "hearing"


@dataclass(frozen=True)
class RouterProgress:
    mode: str = ""  # the sticky mode
    heard_utt: str = ""  # the utterance decided last ...
    heard_text: str = ""  # ... what it said,
    heard_mode: str = ""  # the mode it went to,
    heard_dropped: str = ""  # or why nothing was typed for it
    next_mode: str = ""  # a mode's name said on its own: the next utterance's mode ...
    next_mode_until_ns: int = 0  # ... if it is said before this monotonic time


@dataclass(frozen=True)
class KeysProgress:
    sink: str = ""  # the typing backend
    reason: str = ""  # why that one
    last_utt: str = ""  # the utterance typed last ...
    last_typed: str = ""  # ... what its sink was given (its end),
    last_by: str = ""  # who wrote it (router, instruct, thinking),
    last_latency_ms: int = -1  # end of speech -> its first key; -1 when unknown
    last_error: str = ""  # why typing it failed
    held: int = 0  # utterances kept, not typed: said too long ago (speech said while loading too)
    held_reason: str = ""  # why the latest of them was kept
    held_said_ns: int = 0  # the end of speech (monotonic ns) of the oldest of them


BY_STAGE = {"capture": CaptureProgress, "vad": VadProgress, "router": RouterProgress, "keys": KeysProgress}


def progress_of(stage: str, progress: dict):
    """The progress record a stage's heartbeat (or status reply) carries; None for a
    stage that reports none, one that has said nothing yet (still loading: the map is
    empty), or a map that does not make its record."""
    kind = BY_STAGE.get(stage)
    if kind is None or not progress:
        return None
    try:
        return typed(kind, progress, f"{stage} progress")
    except RecordError:
        return None
