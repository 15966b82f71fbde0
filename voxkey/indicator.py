"""What voxkey is doing, in one word, for an indicator (`voxkey tray`, a Waybar module
through `voxkey status --follow --json`): a fold of what a follower sees on the bus.

States, in the order they win when several hold at once:

    stopped    no stage of the voxkey is there (its sockets are gone or refuse)
    loading    some stage is not ready yet
    error      typing failed, vad refuses new speech, or a stage stopped being ready
    typing     keys is typing an utterance (the router handed it keystrokes, keys has not
               reported the end of it)
    thinking   an utterance went to a model (instruct or thinking) and nothing of its
               answer is being typed yet
    paused     listening is off
    hearing    vad is inside speech (its progress says `speaking`)
    listening  waiting for speech

The fold (`Seen`) takes frames, and the follower's links to each stage's socket coming
up or going down (a ZeroMQ socket monitor says so at once), with the monotonic time
they came at; `Seen.indicator(now_ns)` is pure. It keeps what `voxkey up` folds
(voxkey/status.py `Live`: listening, mode, backend, readiness, errors) and adds speech,
answers and typing. Nothing the user said is kept or shown, only that they spoke.
`follow()` is the I/O around it: it yields each new Indicator until asked to stop.
"""

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bus.frames import Frame, Generation, Heartbeat, Keystrokes, Request, Transcript, Typed
from bus.progress import VadProgress, progress_of
from bus.wiring import MODEL_STAGES, STAGES
from voxkey.status import Live, clip, held_line

STATES = ("stopped", "loading", "error", "typing", "thinking", "paused", "hearing", "listening")
# An answer or a typing with no news for this long is forgotten: its end was lost (a
# follower that joined late, a restart). Long enough for a thinking model that reasons
# on a slow Pi without typing a thing.
STALE_NS = 300 * 1_000_000_000
NOT_RUNNING = "voxkey is not running: start it with `voxkey up` (or `voxkey service install`)"
# How often a follower with nothing to hear looks whether it is asked to stop (and
# forgets stale answers): once a heartbeat period, as the stages themselves wake.
LOOK_MS = 5000
# What a follower subscribes to besides heartbeats.
TOPICS = [Transcript.TOPIC, Typed.TOPIC, Request.TOPIC, Keystrokes.TOPIC, Generation.TOPIC]


@dataclass(frozen=True)
class Indicator:
    state: str
    listening: bool | None = None  # None: not known yet
    mode: str = ""
    sink: str = ""
    tooltip: str = ""  # one line, for a tray's tooltip or a bar's
    error: str = ""  # the error shown last (typing failed, speech refused, a stage gone)
    held: int = 0  # utterances keys holds instead of typing them late

    @property
    def text(self) -> str:
        """A bar's few characters: the state, and the mode while it matters."""
        running = self.state in ("listening", "hearing", "thinking", "typing")
        return f"{self.state} · {self.mode}" if running and self.mode else self.state

    def as_json(self) -> dict:
        """The object `voxkey status --follow --json` prints: the Indicator's fields and
        what a Waybar `custom` module with `"return-type": "json"` reads."""
        return {**asdict(self), "text": self.text, "class": self.state, "alt": self.state}

    def line(self) -> str:
        return f"voxkey: {self.state} | {self.mode or '?'} | {self.sink or '?'} | {self.tooltip}"


def stopped(why: str = NOT_RUNNING) -> Indicator:
    return Indicator("stopped", tooltip=why, error=why)


@dataclass
class Seen:
    """What a follower has seen of the bus, folded as it comes."""

    live: Live = field(default_factory=Live)
    links: dict = field(default_factory=dict)  # stage -> its socket is connected (absent: not known yet)
    ever_ready: bool = False
    speaking: bool = False
    answering: dict = field(default_factory=dict)  # utt -> (the model stage asked, ns of its request)
    typing: dict = field(default_factory=dict)  # utt -> (who writes it, ns of its last news)

    def on_link(self, stage: str, up: bool) -> None:
        """The follower's connection to `stage`'s socket came up or went down."""
        self.links[stage] = up
        if not up:
            self.live.loading.ready.pop(stage, None)  # it says nothing more, "not ready" included
            if stage == "vad":
                self.speaking = False

    def on_frame(self, frame: Frame, now_ns: int) -> None:
        body = frame.body
        if isinstance(body, Heartbeat):
            self.links[frame.src] = True
            said = progress_of(frame.src, body.progress)
            if isinstance(said, VadProgress):
                self.speaking = said.speaking
        elif isinstance(body, Request):
            self.answering[frame.utt] = (MODEL_STAGES.get(body.mode, body.mode), now_ns)
        elif isinstance(body, Keystrokes) and frame.src == "router":
            self.answering.pop(frame.utt, None)
            self.typing[frame.utt] = (body.by or "router", now_ns)
        elif isinstance(body, Typed):
            self.answering.pop(frame.utt, None)
            if body.final:
                self.typing.pop(frame.utt, None)
            else:
                self.typing[frame.utt] = (body.by or "router", now_ns)
        self.live.on_frame(frame)
        self.ever_ready = self.ever_ready or self.live.loading.all_ready

    @property
    def settled(self) -> bool:
        """Every stage's link is known, up or down: until then a state would be a guess
        (the sockets of a voxkey that stopped stay behind, and refuse one by one)."""
        return all(stage in self.links for stage in STAGES)

    @property
    def gone(self) -> bool:
        """Every stage's socket refused or closed: nothing of this voxkey runs."""
        return all(self.links.get(stage) is False for stage in STAGES)

    def indicator(self, now_ns: int) -> Indicator:
        live = self.live
        common = {"listening": live.listening, "mode": live.mode, "sink": live.sink, "held": live.keys.held}
        if self.gone:
            return stopped()
        state, tooltip, error = self._state(now_ns)
        extras = [held_line(live.keys, now_ns), live.hotkey_problem]
        tooltip = "; ".join([tooltip, *(extra for extra in extras if extra)])
        return Indicator(state, tooltip=tooltip, error=error, **common)

    def _state(self, now_ns: int) -> tuple[str, str, str]:
        """(state, its tooltip, the error) as the states' order in the docstring says."""
        live = self.live
        waiting = live.loading.waiting()
        if waiting and not self.ever_ready:
            ready = len(STAGES) - len(waiting)
            return (
                "loading",
                f"voxkey is loading: {ready} of {len(STAGES)} stages ready, waiting for {', '.join(waiting)}",
                "",
            )
        problem = self._problem(waiting)
        if problem:
            return "error", f"voxkey: {problem}", problem
        fresh = now_ns - STALE_NS
        typing = [by for by, at in self.typing.values() if at >= fresh]
        answering = [stage for stage, at in self.answering.values() if at >= fresh]
        mode = live.mode or "?"
        if typing:
            return "typing", f"voxkey is typing ({typing[-1]}'s words)", ""
        if answering:
            return "thinking", f"voxkey: {answering[-1]} is answering", ""
        if live.listening is False:
            return "paused", "voxkey is paused: `voxkey listen on` resumes", ""
        if self.speaking:
            return "hearing", f"voxkey hears you ({mode})", ""
        return "listening", f"voxkey is listening ({mode}, typing with {live.sink or '?'})", ""

    def _problem(self, waiting: list[str]) -> str:
        live = self.live
        if waiting:
            return f"{', '.join(waiting)} not ready (restarting?)"
        if live.refusing:
            return f"speech refused: {live.refusing}"
        if live.error:
            return f"typing failed: {clip(live.error)}"
        return ""


# --- following the bus -------------------------------------------------------------------


def follow(config: dict, stop: threading.Event | None = None, poll_s: float = 2.0) -> Iterator[Indicator]:
    """Each new Indicator of the voxkey `config` names, until `stop` is set. While no
    voxkey runs it says `stopped` once and looks again every `poll_s` (for its run
    directory, then its sockets); while one runs it wakes only when the bus says something."""
    from bus import sockets

    stop = stop or threading.Event()
    run_dir = sockets.run_dir(config)
    shown = None
    while not stop.is_set():
        if not running_here(run_dir):
            shown = yield from _changed(shown, stopped())
            stop.wait(poll_s)
            continue
        for indicator in _follow_running(config, stop):
            shown = yield from _changed(shown, indicator)
        if not stop.is_set():
            shown = yield from _changed(shown, stopped())
            stop.wait(poll_s)  # sockets a killed voxkey left behind: not every turn


def running_here(run_dir: Path) -> bool:
    """A voxkey may run in `run_dir`: its run file and a stage's socket are there."""
    return (run_dir / "run.toml").is_file() and any((run_dir / f"{stage}.sock").exists() for stage in STAGES)


def _changed(shown: Indicator | None, indicator: Indicator):
    if indicator != shown:
        yield indicator
    return indicator


def _follow_running(config: dict, stop: threading.Event) -> Iterator[Indicator]:
    """Indicators while the voxkey's stages are there; returns once every one is gone."""
    import os

    import zmq
    from zmq.utils.monitor import recv_monitor_message

    from bus import log as logging
    from bus import sockets
    from bus.frames import now_ns
    from bus.peer import Peer

    # A name of its own: the command's ("cli") is `voxkey up`'s, and two followers (a
    # tray and a bar) may run at once.
    name = f"indicator-{os.getpid()}-{threading.get_ident() % 10_000}"
    peer = Peer(name, config, list(STAGES), TOPICS, logging.setup(name))
    events = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED
    monitor = peer.sub.get_monitor_socket(events)
    stage_at = {sockets.endpoint(config, stage): stage for stage in STAGES}
    seen = Seen()
    try:
        while not stop.is_set() and not seen.gone:
            frame = peer.receive(LOOK_MS, (monitor,))  # woken by a frame or by a link that came or went
            while monitor.poll(0):
                event = recv_monitor_message(monitor)
                stage = stage_at.get(event["endpoint"].decode())
                if stage:
                    seen.on_link(stage, event["event"] == zmq.EVENT_CONNECTED)
            if frame is not None:
                seen.on_frame(frame, now_ns())
            if seen.settled:
                yield seen.indicator(now_ns())
    finally:
        peer.sub.disable_monitor()
        monitor.close(linger=0)
        peer.close()
        Path(sockets.endpoint(config, name).removeprefix("ipc://")).unlink(missing_ok=True)  # ZeroMQ leaves it
