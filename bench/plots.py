"""PNG plots of a bench result (matplotlib, Agg: no display needed): a per-utterance
waterfall of the spans between trace marks, latency histograms, and memory over a soak."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.patches import Patch  # noqa: E402

from bench.stats import MARK_LABELS  # noqa: E402

SPANS = [mark for mark in MARK_LABELS if mark != "speech_end_ns"]


def waterfall(results: dict, path: Path) -> Path:
    rows = results["utterances"]
    figure, axes = plt.subplots(figsize=(11, 1.2 + 0.45 * max(1, len(rows))))
    colour = dict(zip(SPANS, plt.get_cmap("tab10").colors))
    for index, row in enumerate(rows):
        left = 0.0
        for mark in SPANS:
            width = row["waterfall_ms"].get(mark)
            if width is not None:
                axes.barh(index, width, left=left, color=colour[mark])
                left += width
    axes.set_yticks(range(len(rows)), [row["utt"] for row in rows], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("ms after end of speech")
    axes.set_title("Per-utterance waterfall: end of speech → last keystroke")
    present = [mark for mark in SPANS if any(mark in row["waterfall_ms"] for row in rows)]
    legend = [Patch(color=colour[mark], label=f"→ {MARK_LABELS[mark]}") for mark in present]
    axes.legend(handles=legend, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(figure, path)


def latency_histogram(results: dict, audio_wire_ms: list[float], path: Path) -> Path:
    figure, (felt, wire) = plt.subplots(1, 2, figsize=(11, 4))
    felt.hist(
        [
            row["speech_end_to_first_key_ms"]
            for row in results["utterances"]
            if row.get("speech_end_to_first_key_ms") is not None
        ],
        bins=20,
    )
    felt.set_xlabel("end of speech → first keystroke, ms")
    felt.set_ylabel("utterances")
    felt.set_title("Latency a user feels")
    wire.hist(audio_wire_ms, bins=50)
    wire.set_xlabel("capture mark → arrival at a subscriber, ms")
    wire.set_ylabel("audio frames")
    wire.set_title("Audio frame hop on the bus")
    return save(figure, path)


def rss_over_time(series: list, path: Path) -> Path:
    """Each stage's RSS against minutes of soak: a leak is a line that keeps rising."""
    figure, axes = plt.subplots(figsize=(11, 4.5))
    names = sorted({name for _, reading in series for name in reading})
    for name in names:
        points = [(t / 60, reading[name]) for t, reading in series if name in reading]
        axes.plot([t for t, _ in points], [rss for _, rss in points], label=name)
    axes.set_xlabel("minutes")
    axes.set_ylabel("RSS, MB")
    axes.set_title("Soak: resident memory of each stage")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(figure, path)


def save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
