"""The microphone, through sounddevice (PortAudio): opened at the rate and channels the
device takes, converted to 16 kHz mono, frames queued by the audio callback and
counted when they overflow. While not listening, blocks are only kept, raw, in a ring
of the last seconds: nothing wakes the stage, nothing is converted until listening
resumes and wants them."""

import os
import queue
import threading
from collections import deque

import numpy as np

from bus.frames import SAMPLE_RATE, now_ns
from bus.stage import StageError
from stages.capture import audio


class Microphone:
    """A PortAudio input stream at the device's own rate, re-cut to 16 kHz frames.

    The callback only queues raw blocks and signals `wake_fd`: PortAudio's thread must
    never wait on us, and the stage sleeps until audio comes rather than polling. Each
    block is one frame's worth of audio at the device's rate: fewer wake-ups, and no
    later than a frame could leave anyway. While `keeping` (not listening), the callback
    puts blocks in the ring `kept` (the last `keep_s`) instead and wakes no one.
    """

    def __init__(self, device: str | None, frame_samples: int, counters, keep_s: float = 10.0):
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
            raise StageError(
                f"no usable input device {device or '(default)'} ({error}); devices: {self.list_devices()}"
            ) from None
        self.device = device
        self.name = str(info["name"])
        self.rate = int(info["default_samplerate"])
        self.channels = min(int(info["max_input_channels"]), 2) or 1
        self.resample = audio.Resampler(self.rate, self.channels)
        self.blocks: queue.Queue = queue.Queue()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.keeping = False  # set before `open`; then changed by `keep` and `resume` only
        self.kept: deque = deque(maxlen=max(1, round(keep_s * SAMPLE_RATE / frame_samples)))
        self.kept_frames = 0  # device frames ever put in the ring (the callback's count)
        self._switch = threading.Lock()  # queue or ring: each block goes to exactly one
        # The stage is woken once this many blocks are queued since it was last woken
        # (more than one only while vad hears silence and the stage gathers them anyway).
        self.wake_every = 1
        self._unwoken = 0
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
            taken = (block.copy(), now_ns())
            with self._switch:
                if self.keeping:
                    self.kept.append(taken)
                    self.kept_frames += frames
                    return
                self.blocks.put(taken)
                self._unwoken += 1
                if self._unwoken < self.wake_every:
                    return
                self._unwoken = 0
            os.eventfd_write(self.wake_fd, 1)

        try:
            self.stream = self.sd.InputStream(
                device=self.device,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                callback=callback,
                blocksize=round(self.frame_samples * self.rate / SAMPLE_RATE),
            )
            self.stream.start()
        except self.sd.PortAudioError as error:
            raise StageError(f"cannot open microphone ({error}); devices: {self.list_devices()}") from None

    def drain(self) -> list[tuple[np.ndarray, int]]:
        """The 16 kHz frames of the blocks queued, with the capture time of each."""
        taken = []
        while True:
            try:
                taken.append(self.blocks.get_nowait())
            except queue.Empty:
                return self._frames(taken)

    def wake_after(self, blocks: int) -> None:
        """Wake the stage once `blocks` more are queued (1: at every block)."""
        with self._switch:
            self.wake_every, self._unwoken = max(1, blocks), 0

    def keep(self) -> None:
        """Not listening: from the next block on, blocks go to the ring, not the queue
        (what is queued already is still drained)."""
        with self._switch:
            self.keeping = True

    def resume(self, since_ns: int) -> list[tuple[np.ndarray, int]]:
        """Listening again: blocks are queued from now on; returns the 16 kHz frames of
        those the ring kept that were captured at `since_ns` or later, oldest first."""
        with self._switch:
            self.keeping = False
            kept = [item for item in self.kept if item[1] >= since_ns]
            self.kept.clear()
        # Audio was skipped before these: the converter starts afresh.
        self.resample = audio.Resampler(self.rate, self.channels)
        self.pending = np.zeros(0, np.int16)
        return self._frames(kept)

    def _frames(self, taken: list) -> list[tuple[np.ndarray, int]]:
        """Blocks (with their capture times) converted in one go (the converter is
        streaming: the same audio as block by block, for one call instead of one per
        block) and re-cut into frames, each with the time of the block it ends in."""
        if not taken:
            return []
        blocks = [block for block, _ in taken]
        start = len(self.pending)
        self.pending = np.concatenate([self.pending, self.resample(np.concatenate(blocks))])
        ends, total = [], 0  # where each block ends among the converted samples
        for block, captured_ns in taken:
            total += len(block)
            ends.append((start + total * SAMPLE_RATE // self.rate, captured_ns))
        frames, cut, which = [], 0, 0
        while len(self.pending) - cut >= self.frame_samples:
            cut += self.frame_samples
            while which < len(ends) - 1 and ends[which][0] < cut:
                which += 1
            frames.append((self.pending[cut - self.frame_samples : cut], ends[which][1]))
        self.pending = self.pending[cut:]
        return frames

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        os.close(self.wake_fd)
