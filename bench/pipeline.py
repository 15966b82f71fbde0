"""One recording through the real pipeline (every stage its own process under
supervisord, voxkey.replay at real time), observed from outside:

* the trace rows voxkey.replay keeps (marks per utterance, LLM generation reports);
* each stage process sampled from /proc about twice a second (bench.procs);
* each stage's counters once all was typed (asked, voxkey.replay), which say how many frames it lost
  (gaps in sequence numbers) or rejected;
* a tap: one more subscriber on every stage's socket, which timestamps each frame on
  arrival, so a hop's wire latency is arrival minus the mark the sender stamped just
  before publishing (it costs each publisher one more copy of every frame); it also
  records the requests the router sent to the models, which the raw baseline replays.
"""

import copy
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from bench import procs
from bench.stats import sequence_gaps
from bus import cpus as cpu_plan
from bus import frames, sockets, wiring
from stages.capture import audio
from voxkey import replay

# For each (sender, topic): the mark the sender stamps immediately before publishing.
SEND_MARKS = {
    ("capture", "audio"): "capture",
    ("vad", "speech"): "vad",
    ("asr", "transcript"): "asr",
    ("router", "keystrokes"): "router",
    ("router", "request"): "router",
    ("keys", "typed"): "last_key",
}
TAPPED_TOPICS = sorted({topic for _, topic in SEND_MARKS} | {"generation"})
ENGINE_STAGES = ("asr", "instruct", "thinking")  # the stages whose `threads` sizes an engine


class Tap(threading.Thread):
    """Listens to every stage's socket from a thread of its own, so arrival times are
    not held up by the replay loop's 100 ms polls."""

    def __init__(self, config: dict):
        super().__init__(daemon=True, name="bench-tap")
        self.endpoints = [sockets.endpoint(config, stage) for stage in wiring.STAGES]
        self.stopping = threading.Event()
        self.wire: dict[str, list[tuple[int, float]]] = {}  # "sender/topic" -> (sent ns, ms to arrive)
        self.requests: list[dict] = []
        self.speech_marks: dict[str, dict] = {}  # utterance id -> marks as vad sent it
        self.generations: list[frames.Frame] = []
        self.lost = 0
        self._last_seq: dict[tuple[str, str], int] = {}

    def run(self) -> None:
        context = zmq.Context()
        socket = sockets.subscriber(context, self.endpoints, TAPPED_TOPICS)
        try:
            while not self.stopping.is_set():
                if socket.poll(50):
                    parts = socket.recv_multipart()
                    self.take(parts, frames.now_ns())
        finally:
            socket.close()
            context.term()

    def take(self, parts: list[bytes], arrived_ns: int) -> None:
        try:
            frame = frames.decode(parts)
        except frames.FrameRejected:
            return
        key = (frame.src, frame.topic)
        self.lost += sequence_gaps(self._last_seq.get(key), frame.seq)
        self._last_seq[key] = frame.seq
        sent = frame.marks.get(SEND_MARKS.get(key, ""))
        if sent:
            self.wire.setdefault(f"{frame.src}/{frame.topic}", []).append((sent, (arrived_ns - sent) / 1e6))
        if frame.topic == "speech":
            self.speech_marks[frame.utt] = frame.marks
        if frame.topic == "generation":
            self.generations.append(frame)
        if frame.topic == "request":
            self.requests.append({"utt": frame.utt, "mode": frame.body.mode, "text": frame.body.text})

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


@dataclass
class Observer:
    """The `observe(supervisor, frame)` callback of voxkey.replay.run."""

    config: dict
    sampler: procs.Sampler = field(default_factory=procs.Sampler)
    heartbeats: dict = field(default_factory=dict)
    tap: Tap | None = None
    all_ready: bool = False

    def __call__(self, supervisor, frame) -> None:
        if self.tap is None:
            # The run directory exists once the replay has started supervisord.
            self.tap = Tap(self.config)
            self.tap.start()
        if frame is not None and isinstance(frame.body, frames.Heartbeat):
            self.heartbeats[frame.src] = frame.body
            return
        # A final keystroke may be the last frame of a replay: sample once more before the stop.
        if frame is None or (isinstance(frame.body, frames.Typed) and frame.body.final):
            self.sample(supervisor)

    def sample(self, supervisor) -> None:
        pids = {name: info.get("pid", 0) for name, info in supervisor.states().items()}
        if supervisor.process is not None:
            pids["supervisord"] = supervisor.process.pid
        self.sampler.take(pids)
        ready = [self.heartbeats.get(stage) for stage in wiring.STAGES]
        if not self.all_ready and all(beat is not None and beat.ready for beat in ready):
            self.all_ready = True
            self.sampler.mark_baseline()


def bus_losses(counters: dict) -> dict:
    """Frames lost (sequence gaps), rejected and audio gaps (vad saw samples missing),
    summed over the stages' counters."""
    lost = sum(stage.get("lost", 0) for stage in counters.values())
    rejected = {}
    for stage in counters.values():
        for key, value in stage.items():
            if key.startswith("rejected."):
                rejected[key] = rejected.get(key, 0) + value
    return {
        "lost": lost,
        "rejected": rejected,
        "audio_gaps": counters.get("vad", {}).get("audio_gaps", 0),
    }


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(frames.SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * frames.SAMPLE_RATE), np.int16)


def prepare_recording(source: Path, work_dir: Path, tail_silence_s: float) -> tuple[Path, np.ndarray]:
    """The recording as 16 kHz mono WAV with silence after it, as a microphone would go
    on delivering: every utterance then ends by the VAD hearing silence, not by the
    file ending. The file keeps its stem, so utterance ids name the recording."""
    samples = np.concatenate([audio.read_all(source), silence(tail_silence_s)])
    return write_wav(work_dir / f"{source.stem}.wav", samples), samples


def run(config: dict, recording: Path) -> dict:
    """Replay one recording at real time; what was measured, as plain data."""
    config = copy.deepcopy(config)  # voxkey.replay.run fills in capture's source and listen list
    observer = Observer(config)
    started = time.monotonic()
    try:
        state = replay.run(config, str(recording), realtime=True, observe=observer)
    finally:
        if observer.tap is not None:
            observer.tap.stop()
    tap = observer.tap
    # The replay waits for every report; the tap's copy fills a row it somehow missed.
    for frame in tap.generations if tap else []:
        if "outcome" not in state.rows.get(frame.utt, {}):
            state.on_generation(frame)
    counters = state.counters
    return {
        "recording": recording.name,
        "wall_s": round(time.monotonic() - started, 2),
        "text": state.text,
        "rows": [dict(row, recording=recording.name) for row in state.rows.values()],
        "stages": observer.sampler.summary(),
        "counters": counters,
        "losses": bus_losses(counters),
        "wire": tap.wire if tap else {},
        "tap_lost": tap.lost if tap else 0,
        "requests": tap.requests if tap else [],
        "speech_marks": tap.speech_marks if tap else {},
        "threads": {stage: cpu_plan.for_stage(stage, config["stages"][stage]).threads for stage in ENGINE_STAGES},
    }
