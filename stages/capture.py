"""capture: microphone or recording -> `audio` frames.

Consumes: `start` from the CLI when `wait_for_start` is set (replay waits until every
stage is ready, so nothing is sent before anyone listens).
Produces, handed over reliably to vad (bus/delivery.py): `stream-start` with the
audio format; `audio` frames of exactly `frame_samples` 16 kHz mono int16 samples,
each marked `capture`: when it was spoken (for a recording replayed as fast as
possible, when it would have been, had it been spoken from the start of the replay:
latency figures need --realtime); after a recording's last frame, `stream-stop`.
Guarantees: any rate and channel count is converted; a live microphone's overflows
are counted (`overflows`), never silently skipped; so is a recording's audio that
cannot be decoded (`undecodable`: a damaged or truncated file is typed as far as it
can be read). Audio stays here until vad acknowledges the sample it no longer needs,
and goes again to a restarted vad, so a VAD crash loses no speech. A recording is
never sent more than `retain_s` ahead of what vad has acknowledged; a microphone
cannot wait, and audio older than that is dropped and counted (`retention_overflow`).
"""

import os
import queue
from pathlib import Path

import numpy as np

from bus import audio
from bus.frames import SAMPLE_RATE, AudioChunk, Frame, Start, StreamStart, StreamStop, now_ns
from bus.stage import Stage, StageError, main

FAST_BATCH = 32  # frames sent per loop turn when replaying as fast as possible


class Capture(Stage):
    name = "capture"
    topics = (Start.TOPIC,)

    def setup(self) -> None:
        source = str(self.settings["source"])
        self.frame_samples = int(self.settings["frame_samples"])
        self.frame_ns = self.frame_samples * 1_000_000_000 // SAMPLE_RATE
        self.sent = 0
        self.started_ns = 0
        self.retain_frames = int(float(self.settings["retain_s"]) * SAMPLE_RATE / self.frame_samples)
        if source == "mic" or source.startswith("mic:"):
            self.source = Microphone(source.partition(":")[2] or None, self.frame_samples, self.peer.counters)
            self.stream = f"mic-{os.getpid()}-{now_ns()}"
            self.realtime = True
        else:
            try:
                audio.probe(source)
            except audio.UnreadableAudio as error:
                raise StageError(str(error)) from None
            self.source = audio.fixed_frames(audio.read_pcm16(source, self._undecodable), self.frame_samples)
            self.stream = Path(source).stem
            self.realtime = bool(self.settings["realtime"])
        self.state = "waiting" if self.settings.get("wait_for_start") else "streaming"
        if self.state == "streaming":
            self._begin()

    def signal(self, frame: Frame) -> None:
        if isinstance(frame.body, Start) and self.state == "waiting":
            self._begin()

    def _begin(self) -> None:
        self.state = "streaming"
        self.started_ns = now_ns()
        if isinstance(self.source, Microphone):
            self.source.open()
            self.log.info("microphone open", device=self.source.name, rate=self.source.rate, channels=self.source.channels)
        self.publish(StreamStart(stream=self.stream, live=self.realtime), to="vad", key=f"start@{self.stream}", position=0)
        self.log.info("streaming", stream=self.stream, realtime=self.realtime)

    def tick(self) -> float:
        if self.state != "streaming":
            return 0.2
        if isinstance(self.source, Microphone):
            for block, captured_ns in self.source.drain():
                self._send(block, captured_ns)
            self._drop_beyond_retention()
            return 0.01
        unacknowledged = self.delivery.count("vad")
        if unacknowledged >= self.retain_frames:
            return 0.05  # a recording waits for vad rather than outrun what it keeps
        budget = self.retain_frames - unacknowledged if not self.realtime else self._frames_due()
        for _ in range(min(budget, FAST_BATCH)):
            try:
                block = next(self.source, None)
            except audio.UnreadableAudio as error:  # what was decoded is sent; the rest cannot be
                self._undecodable(str(error))
                block = None
            if block is None:
                return self._finish()
            self._send(block, self._due_ns(self.sent))
        if not self.realtime:
            return 0.0
        return max(0.0, (self._due_ns(self.sent) - now_ns()) / 1e9)

    def _undecodable(self, message: str) -> None:
        self.peer.counters["undecodable"] += 1
        self.log.warning("recording damaged", detail=message)

    def _due_ns(self, index: int) -> int:
        # A frame "arrives" when its last sample would have been spoken.
        return self.started_ns + (index + 1) * self.frame_ns

    def _frames_due(self) -> int:
        return max(0, (now_ns() - self.started_ns) // self.frame_ns - self.sent)

    def _send(self, block: np.ndarray, captured_ns: int) -> None:
        offset = self.sent * self.frame_samples
        payload = block.astype("<i2", copy=False).tobytes()
        # Positioned by the sample after it: vad acknowledges by the first sample it needs.
        self.publish(AudioChunk(stream=self.stream, offset=offset), marks={"capture": captured_ns}, payload=payload,
                     to="vad", key=str(offset), position=offset + len(block))
        self.sent += 1

    def _drop_beyond_retention(self) -> None:
        dropped = self.delivery.trim("vad", self.retain_frames)
        if dropped:
            self.peer.counters["retention_overflow"] += dropped

    def _finish(self) -> float:
        samples = self.sent * self.frame_samples
        self.publish(StreamStop(stream=self.stream, samples=samples), marks={"capture": now_ns()},
                     to="vad", key=f"stop@{self.stream}", position=samples + 1)
        self.state = "done"
        self.log.info("recording done", frames=self.sent, seconds=round(self.sent * self.frame_ns / 1e9, 2))
        return 0.2

    def teardown(self) -> None:
        if isinstance(self.source, Microphone):
            self.source.close()


class Microphone:
    """A PortAudio input stream at the device's own rate, re-cut to 16 kHz frames.

    The callback only queues raw blocks: PortAudio's thread must never wait on us.
    """

    def __init__(self, device: str | None, frame_samples: int, counters):
        try:
            import sounddevice
        except OSError as error:  # libportaudio2 missing
            raise StageError(f"cannot load PortAudio ({error}): install libportaudio2") from None
        self.sd = sounddevice
        self.counters = counters
        self.frame_samples = frame_samples
        try:
            info = sounddevice.query_devices(device, kind="input")
        except (ValueError, sounddevice.PortAudioError) as error:
            raise StageError(f"no usable input device {device or '(default)'} ({error}); devices: {self.list_devices()}") from None
        self.device = device
        self.name = str(info["name"])
        self.rate = int(info["default_samplerate"])
        self.channels = min(int(info["max_input_channels"]), 2) or 1
        self.resample = audio.Resampler(self.rate, self.channels)
        self.blocks: queue.Queue = queue.Queue()
        self.pending = np.zeros(0, np.int16)
        self.stream = None

    def list_devices(self) -> str:
        try:
            names = [f"{i}: {d['name']}" for i, d in enumerate(self.sd.query_devices()) if d["max_input_channels"] > 0]
        except Exception:
            names = []
        return "; ".join(names) or "none found"

    def open(self) -> None:
        def callback(block, frames, time_info, status):
            if status.input_overflow:
                self.counters["overflows"] += 1
            self.blocks.put((block.copy(), now_ns()))

        try:
            self.stream = self.sd.InputStream(
                device=self.device, samplerate=self.rate, channels=self.channels, dtype="int16", callback=callback
            )
            self.stream.start()
        except self.sd.PortAudioError as error:
            raise StageError(f"cannot open microphone ({error}); devices: {self.list_devices()}") from None

    def drain(self):
        while True:
            try:
                block, captured_ns = self.blocks.get_nowait()
            except queue.Empty:
                return
            self.pending = np.concatenate([self.pending, self.resample(block)])
            while len(self.pending) >= self.frame_samples:
                yield self.pending[: self.frame_samples], captured_ns
                self.pending = self.pending[self.frame_samples :]

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


if __name__ == "__main__":
    main(Capture)
