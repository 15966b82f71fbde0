"""Recognition time by clip length, for `voxkey bench --endpointing`: what Whisper's
fixed 30 s window costs (`voxkey bench --recognition` sets it against the utterance-length
encoding)."""

import time
from pathlib import Path

import numpy as np

from bench import raw
from bench.stats import percentile
from bus.frames import SAMPLE_RATE
from stages.capture import audio

CLIP_SECONDS = (1, 2, 4, 8, 16, 28)


def recognition_by_length(config: dict, audio_dir: Path) -> list[dict]:
    """What Whisper's fixed 30 s window costs: recognition of speech clips of growing
    length against the encoder alone, which always sees 30 s (the clip, padded)."""
    from faster_whisper.audio import pad_or_trim

    whisper = raw.Whisper({**config["stages"]["asr"], "encode": "window"})  # the padded window, whatever is set
    speech = np.tile(audio.read_all(audio_dir / "jfk.flac"), 3)

    def encode(features: np.ndarray) -> float:
        started = time.perf_counter()
        whisper.model.encode(features)
        return (time.perf_counter() - started) * 1000

    rows = []
    for seconds in CLIP_SECONDS:
        clip = speech[: seconds * SAMPLE_RATE]
        features = pad_or_trim(whisper.model.feature_extractor(clip.astype(np.float32) / 32768.0))
        total = percentile([whisper.transcribe(clip)[0] for _ in range(raw.REPEATS)], 50)
        encoder = percentile([encode(features) for _ in range(raw.REPEATS)], 50)
        rows.append({"seconds": seconds, "recognition_ms": round(total, 1), "encoder_ms": round(encoder, 1)})
    return rows
