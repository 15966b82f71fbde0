"""The microphone, through sounddevice (PortAudio): opened at the rate and channels the
device takes, converted to 16 kHz mono, frames queued by a reader thread and counted
when they overflow. While not listening, the audio is only kept, raw, in a ring of the
last seconds: nothing wakes the stage, nothing is converted until listening resumes and
wants it."""

import os
import queue
import threading
from collections import deque

import numpy as np

from bus.frames import SAMPLE_RATE, now_ns
from bus.stage import StageError
from stages.capture import audio

# PortAudio's buffer: it holds the audio between two of the reader's takes. Far more
# than the longest wait below, so that a busy machine delays the audio, never drops it.
BUFFER_S = 2.0
# While not listening nobody waits for the audio: the ring is filled this often, in one
# take, and a `listen on` takes what is there at once (the reader is woken for it).
KEEP_EVERY_S = 0.5


class Microphone:
    """A PortAudio input stream at the device's own rate, re-cut to 16 kHz frames.

    A reader thread takes the audio with PortAudio's blocking reads and queues it in
    blocks of one frame's worth at the device's rate, signalling `wake_fd`, so the stage
    sleeps until audio comes rather than polling. It wakes as often as someone needs
    the audio, not once per block: frame by frame while the stage wants every frame
    (`wake_after(1)`); once per `wake_after(n)` blocks while vad hears silence and the
    stage gathers them anyway; once per `KEEP_EVERY_S` while `keeping` (not
    listening), when the blocks go to the ring `kept` (the last `keep_s`) instead and
    wake no one. The stream itself is never stopped or re-opened: nothing said in
    between could be lost. A take of many blocks is cut back into blocks, each dated by
    when its last sample came, as if each had been read on its own.
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
        self.block = round(frame_samples * self.rate / SAMPLE_RATE)  # device frames per block
        self.resample = audio.Resampler(self.rate, self.channels)
        self.blocks: queue.Queue = queue.Queue()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.keeping = False  # set before `open`; then changed by `keep` and `resume` only
        self.kept: deque = deque(maxlen=max(1, round(keep_s * SAMPLE_RATE / frame_samples)))
        self.kept_frames = 0  # device frames ever put in the ring (the reader's count)
        self.since_ns = 0  # nothing captured before this is queued (the last `resume`)
        self._switch = threading.Lock()  # queue or ring: each block goes to exactly one
        # The stage is woken once this many blocks are queued since it was last woken
        # (more than one only while vad hears silence and the stage gathers them anyway).
        self.wake_every = 1
        self._unwoken = 0  # device frames queued since the stage was last woken
        self._nudged = threading.Event()  # the reader's wait is cut short: someone wants the audio now
        self._closing = False
        self.failed = ""  # why the reader stopped taking audio; empty while it takes it
        self.pending = np.zeros(0, np.int16)
        self.stream = None
        self._reader: threading.Thread | None = None

    def list_devices(self) -> str:
        try:
            names = [f"{i}: {d['name']}" for i, d in enumerate(self.sd.query_devices()) if d["max_input_channels"] > 0]
        except Exception:
            names = []
        return "; ".join(names) or "none found"

    def open(self) -> None:
        try:
            self.stream = self.sd.InputStream(
                device=self.device,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.block,
                latency=BUFFER_S,
            )
            self.stream.start()
        except self.sd.PortAudioError as error:
            raise StageError(f"cannot open microphone ({error}); devices: {self.list_devices()}") from None
        self._reader = threading.Thread(target=self._read, name="microphone", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """The reader thread: take the audio as often as `_wait_s` says, until closed."""
        while not self._closing:
            wait_s = self._wait_s()
            if wait_s > 0:
                self._nudged.wait(wait_s)
                self._nudged.clear()
                # Whole blocks only, as PortAudio would hand them one by one: the rest
                # waits for the next take.
                frames = self.stream.read_available // self.block * self.block
                if not frames or self._closing:
                    continue
            else:
                frames = self.block  # every block is wanted: wait in PortAudio for the next
            try:
                taken, overflowed = self.stream.read(frames)
            except self.sd.PortAudioError as error:  # unplugged, or the sound server went away
                if not self._closing:
                    self.failed = f"the microphone stopped ({error}): plug it in again, then restart capture"
                    os.eventfd_write(self.wake_fd, 1)  # the stage says so now
                return
            if overflowed:
                self.counters["overflows"] += 1
            self._deliver(cut_blocks(taken, self.block, now_ns(), self.rate))

    def _wait_s(self) -> float:
        """How long the reader may let audio pile up in PortAudio's buffer: 0 while the
        stage wants every block."""
        with self._switch:
            if self.keeping:
                return KEEP_EVERY_S
            wanted = self.wake_every * self.block - self._unwoken
        return 0.0 if wanted <= self.block else wanted / self.rate

    def _deliver(self, blocks: list[tuple[np.ndarray, int]]) -> None:
        with self._switch:
            if self.keeping:
                self.kept.extend(blocks)
                self.kept_frames += sum(len(block) for block, _ in blocks)
                return
            for item in blocks:
                if item[1] >= self.since_ns:  # captured before the `listen on`: not listened to
                    self.blocks.put(item)
                    self._unwoken += len(item[0])
            if self._unwoken < self.wake_every * self.block:
                return
            self._unwoken = 0
        os.eventfd_write(self.wake_fd, 1)

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
            fewer = max(1, blocks) < self.wake_every
            self.wake_every, self._unwoken = max(1, blocks), 0
        if fewer:
            self._nudged.set()  # the reader may be letting more pile up than is now wanted

    def keep(self) -> None:
        """Not listening: from the next block on, blocks go to the ring, not the queue
        (what is queued already is still drained)."""
        with self._switch:
            self.keeping = True

    def resume(self, since_ns: int) -> list[tuple[np.ndarray, int]]:
        """Listening again: blocks are queued from now on; returns the 16 kHz frames of
        those the ring kept that were captured at `since_ns` or later, oldest first
        (what PortAudio still holds follows in the queue, from `since_ns` on too)."""
        with self._switch:
            self.keeping = False
            self.since_ns = since_ns
            kept = [item for item in self.kept if item[1] >= since_ns]
            self.kept.clear()
        self._nudged.set()  # the reader takes what PortAudio holds now, not in up to KEEP_EVERY_S
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
        self._closing = True
        self._nudged.set()
        if self._reader is not None:
            # A blocking read ends within a block; only a device that stopped delivering
            # keeps it longer, and aborting the stream then ends it.
            self._reader.join(timeout=1.0)
        if self.stream is not None:
            self.stream.abort()
            self.stream.close()
        if self._reader is not None:
            self._reader.join()
        os.close(self.wake_fd)


def cut_blocks(taken: np.ndarray, block: int, taken_ns: int, rate: int) -> list[tuple[np.ndarray, int]]:
    """One take of audio, which ended at `taken_ns`, as blocks of `block` frames (the
    last one shorter if the take is not whole blocks), each with the time its last
    sample came."""
    blocks = []
    for start in range(0, len(taken), block):
        piece = taken[start : start + block]
        after = len(taken) - (start + len(piece))  # frames that came after this piece's last
        blocks.append((piece, taken_ns - after * 1_000_000_000 // rate))
    return blocks
