"""The microphone, through sounddevice (PortAudio): opened at the rate and channels the
device takes, converted to 16 kHz mono, frames queued by the audio callback and
counted when they overflow."""

import os
import queue

import numpy as np

from bus.frames import SAMPLE_RATE, now_ns
from bus.stage import StageError
from stages.capture import audio


class Microphone:
    """A PortAudio input stream at the device's own rate, re-cut to 16 kHz frames.

    The callback only queues raw blocks and signals `wake_fd`: PortAudio's thread must
    never wait on us, and the stage sleeps until audio comes rather than polling. Each
    block is one frame's worth of audio at the device's rate: fewer wake-ups, and no
    later than a frame could leave anyway.
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
        # Off while not listening: the audio is only kept then, and taken a few times a
        # second (at the loop's poll cap) rather than woken for frame by frame.
        self.wake_on_audio = True
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
            if self.wake_on_audio:
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
        os.close(self.wake_fd)
