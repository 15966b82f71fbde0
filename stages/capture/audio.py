"""Reading recordings as 16 kHz mono int16, in bounded chunks, whatever their format.

PyAV (FFmpeg) decodes WAV, FLAC, MP3 and the rest; its resampler converts any rate and
channel layout. Decoding streams packet by packet, so an hours-long file never sits
in memory whole.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

from bus.frames import SAMPLE_RATE


class UnreadableAudio(Exception):
    pass


def probe(path: str | Path) -> float:
    """Check that `path` is a recording with decodable audio; returns its duration in
    seconds (0.0 when the container does not say)."""
    path = Path(path)
    if path.is_dir():
        raise UnreadableAudio(f"recording {path} is a directory (give the path of a WAV, FLAC or MP3 file)")
    if not path.exists():
        raise UnreadableAudio(f"recording {path} does not exist (give the path of a WAV, FLAC or MP3 file)")
    if path.stat().st_size == 0:
        raise UnreadableAudio(f"recording {path} is empty (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UnreadableAudio(
                    f"recording {path} cannot be decoded as audio: "
                    f"it reads as {container.format.name}, with no audio stream"
                )
            stream = container.streams.audio[0]
            if not _first_samples(container, stream):
                raise UnreadableAudio(f"recording {path} holds no audio samples that can be decoded")
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else 0.0
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise UnreadableAudio(f"recording {path} cannot be decoded as audio ({_reason(error)})") from None


def _first_samples(container, stream) -> bool:
    for packet in container.demux(stream):
        for frame in _decode(packet, lambda message: None):
            if frame.samples:
                return True
    return False


def _decode(packet, on_error) -> list:
    """A packet's frames; a packet the decoder refuses is reported and skipped."""
    try:
        return packet.decode()
    except av.error.FFmpegError as error:
        at = f"{float(packet.pts * packet.time_base):.2f} s" if packet.pts is not None else "an unknown time"
        on_error(f"skipped audio that cannot be decoded at {at} ({_reason(error)})")
        return []


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def read_pcm16(path: str | Path, on_error=lambda message: None) -> Iterator[np.ndarray]:
    """Yield the recording as 16 kHz mono int16 arrays of whatever size the decoder gives.

    A packet that cannot be decoded (a truncated or damaged file) is skipped and
    `on_error(message)` told; the rest is still read."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for packet in container.demux(stream):
                for decoded in _decode(packet, on_error):
                    for frame in resampler.resample(decoded):
                        yield frame.to_ndarray().reshape(-1)
            for frame in resampler.resample(None):
                yield frame.to_ndarray().reshape(-1)
    except (av.error.FFmpegError, IndexError) as error:
        raise UnreadableAudio(f"recording {path} stopped decoding: {_reason(error)}") from None


def read_all(path: str | Path) -> np.ndarray:
    chunks = list(read_pcm16(path))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def fixed_frames(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of arrays into arrays of exactly `size` samples; the last is zero-padded.

    Linear in the stream's length: between chunks fewer than `size` samples wait, so
    each sample is copied once, whatever the chunking."""
    pending = np.zeros(0, np.int16)
    for chunk in chunks:
        pending = np.concatenate([pending, chunk.astype(np.int16, copy=False)])
        whole = len(pending) // size * size
        for start in range(0, whole, size):
            yield pending[start : start + size]
        pending = pending[whole:]
    if len(pending):
        yield np.concatenate([pending, np.zeros(size - len(pending), np.int16)])


class Resampler:
    """Converts microphone blocks (any rate, int16, interleaved channels) to 16 kHz mono."""

    def __init__(self, rate: int, channels: int):
        self.rate = rate
        self.layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
        self.channels = channels
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        frame = av.AudioFrame.from_ndarray(
            block.reshape(1, -1).astype(np.int16, copy=False), format="s16", layout=self.layout
        )
        frame.sample_rate = self.rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)
