"""The arithmetic of the bench, kept free of I/O so it can be checked on its own:
percentiles and summaries, the per-utterance waterfall of latencies between trace
marks, hop latencies, and pipeline-versus-raw ratios."""

import math

# The trace marks in the order an utterance passes them (columns of a voxkey.replay row).
WATERFALL_MARKS = (
    ("speech_end_ns", "end of speech"),
    ("vad_ns", "VAD end-of-utterance"),
    ("asr_final_ns", "ASR final"),
    ("router_ns", "router decision"),
    ("llm_first_token_ns", "LLM first token"),
    ("first_key_ns", "first keystroke"),
    ("last_key_ns", "last keystroke"),
)
MARK_LABELS = dict(WATERFALL_MARKS)
TOTALS = {
    "speech_end_to_first_key_ms": ("speech_end_ns", "first_key_ns"),
    "speech_end_to_last_key_ms": ("speech_end_ns", "last_key_ns"),
}


def _any(row: dict) -> bool:
    return True


def _dictated(row: dict) -> bool:
    return not row.get("llm_stage") and not row.get("llm_first_token_ns")


def _streamed(row: dict) -> bool:
    # Only chat types the answer as it is generated; clarify types the finished
    # rewrite and converse types after reasoning, so for them this span is decoding.
    return row.get("mode") == "chat"


# Mark-to-mark hops that are mostly the bus (plus the little work the receiver does
# before stamping), and the utterances each applies to.
MARK_HOPS = {
    "asr→router (asr mark → router mark)": ("asr_final_ns", "router_ns", _any),
    "router→keys, dictation (router mark → first_key)": ("router_ns", "first_key_ns", _dictated),
    "llm→keys, chat (llm_first_token mark → first_key)": ("llm_first_token_ns", "first_key_ns", _streamed),
}


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values, digits: int = 1) -> dict:
    """n, median, p90, p99 and max of a list of numbers (None where there are none)."""
    values = [v for v in values if v is not None]

    def rounded(x):
        return None if x is None else round(x, digits)

    return {
        "n": len(values),
        "median": rounded(percentile(values, 50)),
        "p90": rounded(percentile(values, 90)),
        "p99": rounded(percentile(values, 99)),
        "max": rounded(max(values)) if values else None,
    }


def ms_between(row: dict, start: str, end: str) -> float | None:
    if not row.get(start) or not row.get(end):
        return None
    return round((row[end] - row[start]) / 1e6, 2)


def waterfall(row: dict) -> dict:
    """Milliseconds from each mark an utterance passed to the next one it passed, keyed
    by the mark reached ("vad_ns": end of speech -> VAD end-of-utterance). A dictated
    utterance has no LLM mark, so its router -> first keystroke is one span."""
    spans, previous = {}, None
    for mark, _label in WATERFALL_MARKS:
        if not row.get(mark):
            continue
        if previous is not None:
            spans[mark] = ms_between(row, previous, mark)
        previous = mark
    return spans


def totals(row: dict) -> dict:
    return {name: ms_between(row, start, end) for name, (start, end) in TOTALS.items()}


def waterfall_summary(rows: list[dict]) -> dict:
    """Per span (and the totals): summary over the utterances that have it."""
    per_span: dict[str, list] = {mark: [] for mark, _ in WATERFALL_MARKS[1:]}
    for row in rows:
        for mark, ms in waterfall(row).items():
            per_span[mark].append(ms)
    summary = {mark: summarize(values) for mark, values in per_span.items() if values}
    for name in TOTALS:
        summary[name] = summarize([totals(row)[name] for row in rows])
    return summary


def dominant_span(summary: dict) -> tuple[str, float, float] | None:
    """(span, its median ms, median end of speech -> first keystroke ms): the span
    that takes the most of the latency a user feels."""
    total = (summary.get("speech_end_to_first_key_ms") or {}).get("median")
    spans = [
        (mark, stats["median"])
        for mark, stats in summary.items()
        if mark in MARK_LABELS and mark != "last_key_ns" and stats.get("median") is not None
    ]
    if not spans or total is None:
        return None
    mark, median = max(spans, key=lambda item: item[1])
    return mark, median, total


def mark_hops(rows: list[dict]) -> dict:
    """Mark-to-mark hop latencies over the utterances each hop applies to."""
    return {
        name: summarize([ms_between(row, start, end) for row in rows if eligible(row)], digits=2)
        for name, (start, end, eligible) in MARK_HOPS.items()
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def compare(pairs: list[tuple[float | None, float | None]]) -> dict:
    """Pipeline against raw over matched measurements: the medians of each, the ratio of
    the medians, and the median of the per-item ratios."""
    pairs = [(p, r) for p, r in pairs if p is not None and r is not None]
    pipeline = percentile([p for p, _ in pairs], 50)
    raw = percentile([r for _, r in pairs], 50)
    return {
        "n": len(pairs),
        "pipeline_median": None if pipeline is None else round(pipeline, 2),
        "raw_median": None if raw is None else round(raw, 2),
        "ratio_of_medians": ratio(pipeline, raw),
        "median_ratio": ratio(percentile([p / r for p, r in pairs if r], 50), 1),
    }


def sequence_gaps(previous: int | None, seq: int) -> int:
    """Frames missing between two sequence numbers of one (source, topic); a sequence
    that goes backwards is a restarted sender, not a loss."""
    if previous is None or seq <= previous:
        return 0
    return seq - previous - 1


def interval_overlap_ms(a: tuple[int, int], b: tuple[int, int]) -> float:
    """How long two [start, end] nanosecond intervals overlap, in ms (0 if they do not)."""
    return round(max(0, min(a[1], b[1]) - max(a[0], b[0])) / 1e6, 1)
