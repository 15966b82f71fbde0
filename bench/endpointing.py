"""`voxkey bench --endpointing`: how soon the words are on screen after speech really ends.

Streams are built from the dictation fixtures with the bounds of each sentence's speech
known to the sample (Silero, window by window, on each recording alone):

* `sentences`: each sentence once, 1.5 s of low noise apart;
* `pauses`: the same sentences with pauses of 0.3-0.8 s (seeded) put in at their
  quietest inner points, as commas and breaths are: where endpointing is hard.

Each stream is replayed at real time through every stage, once per arm (the settings
compared). Per sentence, the trace gives the time from where its speech ends *in the
recording* (capture's `stream_started_ns` plus the sample position, not where vad
decided it ended) to its first and its last keystroke. Alongside, from the same run:
faster-whisper alone on the same sentence's audio (the raw recognition time, the
floor), the word error rate against the fixture text, characters erased, sentences
cut into more than one utterance, and asr's guesses used, wasted and skipped. The
cost of shorter end-of-speech silences in cut sentences is counted offline with vad's
own segmenter, since it needs no recognition.
"""

import copy
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench import raw, workload
from bench.pipeline import write_wav
from bench.stats import percentile
from bench.whisper_window import recognition_by_length
from bus import config as configuration
from bus.frames import SAMPLE_RATE
from stages.capture import audio
from stages.vad import segmenting
from voxkey import replay

SENTENCES = ("dictate_report.wav", "dictate_meeting.wav", "jfk.flac") * 2  # twice: pauses fall differently
NOISE = "noise_only.wav"
BETWEEN_S = 1.5
INNER_PAUSE_S = (0.3, 0.8)
INNER_PAUSES = 2  # per sentence, at most
BEFORE = ["stages.vad.end_of_speech_ms=600", "stages.vad.post_roll_ms=200"]  # the endpointing before guesses
ARMS = {  # laid over the configuration given (the defaults: guessing, beam 1, 500 ms)
    "before: wait, beam 5, 600 ms": ["stages.vad.guess=false", "stages.asr.beam_size=5", *BEFORE],
    "guess, beam 5, 600 ms": ["stages.asr.beam_size=5", *BEFORE],
    "guess, beam 1, 600 ms": BEFORE,
    "guess, beam 1, 500 ms (defaults)": [],
    "defaults, partials": ["stages.vad.partial_every_ms=1000"],
}
END_OF_SPEECH_RULES_MS = (300, 400, 500, 600, 800)
RULE_SEEDS = 30  # pause streams the end-of-speech rules are counted on (offline, cheap)
NOISE_LEVEL = 20  # standard deviation in int16 units, ~-64 dBFS: a quiet room's microphone


@dataclass
class Placed:
    """A sentence in a stream: where its speech begins and ends, in samples."""

    name: str
    text: str
    start: int
    end: int


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    model = segmenting.StreamingSilero(segmenting.silero_path())
    window = segmenting.WINDOW
    return np.array(
        [
            model(samples[i : i + window].astype(np.float32) / 32768.0)
            for i in range(0, len(samples) - window + 1, window)
        ]
    )


def speech_bounds(probabilities: np.ndarray, threshold: float = 0.5) -> tuple[int, int]:
    """(first, last) window of speech: onset at the threshold, the end with vad's hysteresis."""
    heard = np.flatnonzero(probabilities >= threshold)
    ongoing = np.flatnonzero(probabilities >= threshold - segmenting.HYSTERESIS)
    return int(heard[0]), int(ongoing[-1])


def loudness(samples: np.ndarray) -> np.ndarray:
    """RMS of each vad window."""
    windows = samples[: len(samples) // segmenting.WINDOW * segmenting.WINDOW].astype(np.float64)
    return np.sqrt((windows.reshape(-1, segmenting.WINDOW) ** 2).mean(axis=1))


def quiet_points(rms: np.ndarray, first: int, last: int, count: int) -> list[int]:
    """Windows between words where a pause can go: nearly silent (2% of the sentence's
    loudest), in the middle of the sentence, the quietest first, a second apart at least.
    (Silero's probability stays high across the short gaps of fluent speech.)"""
    span = last - first
    inner = range(first + span // 5, last - span // 5)
    gaps = sorted((rms[i], i) for i in inner if rms[i] < 0.02 * rms[first : last + 1].max())
    chosen: list[int] = []
    for _, index in gaps:
        if all(abs(index - other) * segmenting.WINDOW >= SAMPLE_RATE for other in chosen):
            chosen.append(index)
        if len(chosen) == count:
            break
    return sorted(chosen)


def build_stream(names: list[str], audio_dir: Path, rng: random.Random | None) -> tuple[np.ndarray, list[Placed]]:
    """The sentences in a row; with `rng`, pauses put inside each. Silence is low noise."""
    noise = np.random.default_rng(rng.randrange(2**32) if rng else 0)

    def quiet(seconds: float) -> np.ndarray:
        return noise.normal(0, NOISE_LEVEL, int(seconds * SAMPLE_RATE)).astype(np.int16)

    pieces, placed, length = [quiet(BETWEEN_S)], [], int(BETWEEN_S * SAMPLE_RATE)
    window = segmenting.WINDOW
    for name in names:
        samples = audio.read_all(audio_dir / name)
        probabilities = speech_probabilities(samples)
        first, last = speech_bounds(probabilities)
        cuts = quiet_points(loudness(samples), first, last, INNER_PAUSES) if rng else []
        edges = [first * window, *[(cut * window + window // 2) for cut in cuts], (last + 1) * window]
        start = length
        for index, (begin, end) in enumerate(zip(edges, edges[1:])):
            if index:
                pieces.append(quiet(rng.uniform(*INNER_PAUSE_S)))
                length += len(pieces[-1])
            pieces.append(samples[begin:end])
            length += end - begin
        placed.append(Placed(name, spoken_text(audio_dir, name), start, length))
        pieces.append(quiet(BETWEEN_S))
        length += len(pieces[-1])
    return np.concatenate(pieces), placed


def spoken_text(audio_dir: Path, name: str) -> str:
    text = json.loads((audio_dir / "MANIFEST.json").read_text())["files"][name]["text"]
    return " ".join(text) if isinstance(text, list) else text


def sentence_rows(rows: list[dict], placed: list[Placed]) -> list[dict]:
    """Per sentence: its utterances (by where vad heard their speech end) and the times
    from the sentence's real end of speech to the first and last keystroke of the last."""
    margin = SAMPLE_RATE // 2
    result = []
    for sentence in placed:
        mine = [
            row for row in rows if sentence.start - margin <= row.get("speech_end_sample", -1) <= sentence.end + margin
        ]
        entry = {
            "sentence": sentence.name,
            "utterances": len(mine),
            "backspaces": sum(row["backspaces"] for row in mine),
            "typed": " ".join(row["text"].strip() for row in mine),
        }
        last = max(mine, key=lambda row: row["speech_end_sample"], default=None)
        if last and last.get("stream_started_ns") and last.get("first_key_ns"):
            ended_ns = last["stream_started_ns"] + sentence.end * 1_000_000_000 // SAMPLE_RATE
            entry["end_to_first_key_ms"] = round((last["first_key_ns"] - ended_ns) / 1e6, 1)
            entry["end_to_last_key_ms"] = round((last["last_key_ns"] - ended_ns) / 1e6, 1)
            entry["vad_end_error_ms"] = round((last["speech_end_sample"] - sentence.end) * 1000 / SAMPLE_RATE, 1)
        result.append(entry)
    return result


def cut_sentences(samples: np.ndarray, placed: list[Placed], vad_settings: dict, end_of_speech_ms: int) -> int:
    """How many sentences vad's segmenter cuts into more than one utterance with this rule."""
    cut = raw.utterances(samples, {**vad_settings, "end_of_speech_ms": end_of_speech_ms})
    return sum(
        sum(1 for u in cut if sentence.start <= u.end_sample and u.onset_sample <= sentence.end) > 1
        for sentence in placed
    )


def rule_costs(config: dict, audio_dir: Path, rng: random.Random) -> dict:
    """Sentences cut in more than one utterance by each end-of-speech silence: on the
    sentences as spoken, and on RULE_SEEDS streams with pauses put inside them."""
    vad = config["stages"]["vad"]
    plain = build_stream(list(SENTENCES), audio_dir, None)
    paused = [build_stream(list(SENTENCES), audio_dir, random.Random(rng.randrange(2**32))) for _ in range(RULE_SEEDS)]
    costs = {
        "sentences": {ms: cut_sentences(*plain, vad, ms) for ms in END_OF_SPEECH_RULES_MS},
        f"pauses ({RULE_SEEDS} streams)": {
            ms: sum(cut_sentences(*stream, vad, ms) for stream in paused) for ms in END_OF_SPEECH_RULES_MS
        },
    }
    costs["sentences placed"] = {
        "sentences": len(SENTENCES),
        f"pauses ({RULE_SEEDS} streams)": len(SENTENCES) * RULE_SEEDS,
    }
    return costs


def ends_a_sentence(text: str) -> bool:
    return text.rstrip().endswith((".", "?", "!"))


def sentence_end_rule(config: dict, samples: np.ndarray, placed: list[Placed], short_pause_ms: int = 300) -> dict:
    """What "a transcript that ends a sentence may be committed after a short pause"
    would do on this stream, worked out offline: every pause of at least `short_pause_ms`
    inside speech, recognised as the guess asr gets there, is either where a sentence
    really ends or a pause the speaker went on after; a full stop at the latter would
    cut a sentence that the 600 ms rule may keep whole."""
    vad = config["stages"]["vad"]
    model = segmenting.StreamingSilero(segmenting.silero_path())
    segmenter = segmenting.Segmenter(**{key: vad[key] for key in raw.SEGMENTER_KEYS}, guess=True)
    whisper = raw.Whisper(config["stages"]["asr"])
    window = segmenting.WINDOW
    ends = {sentence.end for sentence in placed}
    counts = {
        "at_sentence_end_with_full_stop": 0,
        "at_sentence_end_without": 0,
        "inside_sentence_with_full_stop": 0,
        "inside_sentence_without": 0,
    }
    for offset in range(0, len(samples) - window + 1, window):
        chunk = samples[offset : offset + window]
        for guess in segmenter.push(chunk, model(chunk.astype(np.float32) / 32768.0), offset, 0):
            if not guess.guess or not pause_reaches(samples, guess.end_sample, short_pause_ms):
                continue
            where = (
                "at_sentence_end"
                if any(abs(guess.end_sample - end) <= 4 * window for end in ends)
                else "inside_sentence"
            )
            full_stop = ends_a_sentence(whisper.transcribe(guess.audio)[1])
            counts[f"{where}_{'with_full_stop' if full_stop else 'without'}"] += 1
    return counts


def pause_reaches(samples: np.ndarray, end_sample: int, pause_ms: int) -> bool:
    """Whether the audio after `end_sample` stays quiet for `pause_ms` (by loudness: the
    streams' silences are low noise)."""
    after = samples[end_sample : end_sample + pause_ms * SAMPLE_RATE // 1000]
    return len(after) > 0 and bool(np.all(loudness(after) < 10 * NOISE_LEVEL))


def recognition_floor(config: dict, samples: np.ndarray, placed: list[Placed]) -> list[float]:
    """faster-whisper alone on each sentence's audio, with vad's pre- and post-roll:
    median milliseconds of three, in the order placed."""
    whisper = raw.Whisper(config["stages"]["asr"])
    vad = config["stages"]["vad"]
    before, after = (int(vad[key]) * SAMPLE_RATE // 1000 for key in ("pre_roll_ms", "post_roll_ms"))
    floor = []
    for sentence in placed:
        clip = samples[max(0, sentence.start - before) : sentence.end + after]
        floor.append(round(percentile([whisper.transcribe(clip)[0] for _ in range(raw.REPEATS)], 50), 1))
    return floor


def with_overrides(config: dict, overrides: list[str]) -> dict:
    arm_config = copy.deepcopy(config)
    for item in overrides:
        configuration.apply_override(arm_config, item)
    return arm_config


def replay_arm(arm_config: dict, recording: Path) -> dict:
    state = replay.run(arm_config, str(recording), realtime=True, progress=None)
    return {"text": state.text, "rows": list(state.rows.values()), "counters": state.counters}


def guesses(counters: dict) -> dict:
    asr, vad = counters.get("asr", {}), counters.get("vad", {})
    return {
        "made": vad.get("guesses", 0),
        **{key: asr.get(f"guesses_{key}", 0) for key in ("used", "wasted", "skipped")},
        "partials_recognised": asr.get("partials_recognised", 0),
    }


def summarise(sentences: list[dict], floor: list[float], typed: str, expected: str) -> dict:
    def median(key: str) -> float | None:
        values = [row[key] for row in sentences if key in row]
        return round(percentile(values, 50), 1) if values else None

    over_floor = [
        row["end_to_last_key_ms"] - raw_ms for row, raw_ms in zip(sentences, floor) if "end_to_last_key_ms" in row
    ]
    typed_chars = max(len(typed), 1)
    return {
        "end_to_first_key_ms": median("end_to_first_key_ms"),
        "end_to_last_key_ms": median("end_to_last_key_ms"),
        "raw_recognition_ms": round(percentile(floor, 50), 1),
        "last_key_over_raw_ms": round(percentile(over_floor, 50), 1) if over_floor else None,
        "word_error_rate": round(workload.word_error_rate(workload.words(expected), workload.words(typed)), 4),
        "corrections_per_typed_char": round(sum(row["backspaces"] for row in sentences) / typed_chars, 4),
        "cut_sentences": sum(row["utterances"] > 1 for row in sentences),
        "untyped_sentences": sum(row["utterances"] == 0 for row in sentences),
    }


def measure(config: dict, audio_dir: Path, out_dir: Path, seed: int | None, say) -> dict:
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    say(f"endpointing: seed {seed}")
    work = out_dir / f"endpointing-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    streams = {
        "sentences": build_stream(list(SENTENCES), audio_dir, None),
        "pauses": build_stream(list(SENTENCES), audio_dir, random.Random(seed)),
    }
    results: dict = {"seed": seed, "arms": {}, "streams": {}, "rules": {}, "sentence_end_rule": {}}
    for stream, (samples, placed) in streams.items():
        path = write_wav(work / f"{stream}.wav", samples)
        expected = " ".join(sentence.text for sentence in placed)
        results["streams"][stream] = {
            "seconds": round(len(samples) / SAMPLE_RATE, 1),
            "placed": [asdict(p) for p in placed],
        }
        say(f"endpointing: {stream}: the sentence-end rule, offline")
        results["sentence_end_rule"][stream] = sentence_end_rule(config, samples, placed)
        for arm, overrides in ARMS.items():
            arm_config = with_overrides(config, overrides)
            say(f"endpointing: {stream}: {arm}: raw recognition of {len(placed)} sentences")
            floor = recognition_floor(arm_config, samples, placed)
            say(f"endpointing: {stream}: {arm}: replaying {len(samples) / SAMPLE_RATE:.0f} s at real time")
            run = replay_arm(arm_config, path)
            sentences = sentence_rows(run["rows"], placed)
            results["arms"].setdefault(arm, {})[stream] = {
                "summary": summarise(sentences, floor, run["text"], expected),
                "guesses": guesses(run["counters"]),
                "raw_recognition_ms": floor,
                "sentences": sentences,
                "rows": run["rows"],
            }
    say(f"endpointing: end-of-speech rules on {RULE_SEEDS} pause streams, offline")
    results["rules"] = rule_costs(config, audio_dir, random.Random(seed))
    say("endpointing: recognition by audio length")
    results["recognition_by_length"] = recognition_by_length(config, audio_dir)
    say("endpointing: noise only")
    noise = replay_arm(config, audio_dir / NOISE)
    results["noise_only_typed_chars"] = len(noise["text"])
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (work / "summary.md").write_text(markdown(results))
    results["files"] = [str(work / "results.json"), str(work / "summary.md")]
    return results


def overall(arms: dict) -> dict:
    """Per arm, medians over every sentence of every stream, and the ratio of end of
    speech -> last key to the first arm's (the endpointing before guesses)."""
    rows = {}
    for arm, streams in arms.items():
        pairs = [
            (row["end_to_last_key_ms"], raw_ms)
            for result in streams.values()
            for row, raw_ms in zip(result["sentences"], result["raw_recognition_ms"])
            if "end_to_last_key_ms" in row
        ]
        rows[arm] = {
            "end_to_last_key_ms": round(percentile([last for last, _ in pairs], 50), 1),
            "raw_recognition_ms": round(percentile([raw_ms for _, raw_ms in pairs], 50), 1),
            "last_key_over_raw_ms": round(percentile([last - raw_ms for last, raw_ms in pairs], 50), 1),
        }
    first = next(iter(rows.values()), None)
    for row in rows.values():
        row["ratio_to_first_arm"] = round(row["end_to_last_key_ms"] / first["end_to_last_key_ms"], 2)
    return rows


def markdown(results: dict) -> str:
    lines = [
        f"# Endpointing (seed {results['seed']})",
        "",
        "Medians over the sentences of each stream, from where speech ends in the recording.",
        "",
        "| arm | stream | end → first key ms | end → last key ms | raw recognition ms | last key − raw ms | WER | "
        "corrections/char | cut | guesses used / wasted / skipped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, streams in results["arms"].items():
        for stream, result in streams.items():
            s, g = result["summary"], result["guesses"]
            lines.append(
                f"| {arm} | {stream} | {s['end_to_first_key_ms']} | {s['end_to_last_key_ms']} | "
                f"{s['raw_recognition_ms']} | {s['last_key_over_raw_ms']} | {s['word_error_rate']:.3f} | "
                f"{s['corrections_per_typed_char']:.4f} | {s['cut_sentences']} | "
                f"{g['used']} / {g['wasted']} / {g['skipped']} of {g['made']} |"
            )
    lines += [
        "",
        "Over every sentence of both streams (medians):",
        "",
        "| arm | end → last key ms | raw recognition ms | last key − raw ms | × first arm |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {arm} | {row['end_to_last_key_ms']} | {row['raw_recognition_ms']} | {row['last_key_over_raw_ms']} | "
        f"{row['ratio_to_first_arm']} |"
        for arm, row in overall(results["arms"]).items()
    ]
    lines += [
        "",
        "Sentences cut into more than one utterance by end-of-speech silence (vad's segmenter, offline):",
        "",
        "| stream | " + " | ".join(f"{ms} ms" for ms in END_OF_SPEECH_RULES_MS) + " |",
        "|---|" + "---|" * len(END_OF_SPEECH_RULES_MS),
    ]
    placed = results["rules"]["sentences placed"]
    for stream, rules in results["rules"].items():
        if stream in placed:
            lines.append(
                f"| {stream}, of {placed[stream]} | "
                + " | ".join(str(rules[ms]) for ms in END_OF_SPEECH_RULES_MS)
                + " |"
            )
    lines += [
        "",
        "Pauses of 300 ms or more inside speech, by where they fall "
        "and whether Whisper ended the guess there with a full stop:",
        "",
        "| stream | sentence end, full stop | sentence end, none | inside a sentence, full stop | inside, none |",
        "|---|---|---|---|---|",
    ]
    for stream, counts in results["sentence_end_rule"].items():
        lines.append(
            f"| {stream} | {counts['at_sentence_end_with_full_stop']} | {counts['at_sentence_end_without']} | "
            f"{counts['inside_sentence_with_full_stop']} | {counts['inside_sentence_without']} |"
        )
    lines += [
        "",
        "Whisper's 30 s window: recognition of speech clips against the encoder alone (which always sees 30 s):",
        "",
        "| clip s | recognition ms | encoder ms |",
        "|---|---|---|",
    ]
    lines += [
        f"| {row['seconds']} | {row['recognition_ms']} | {row['encoder_ms']} |"
        for row in results["recognition_by_length"]
    ]
    lines += ["", f"Characters typed for {NOISE}: {results['noise_only_typed_chars']}", ""]
    return "\n".join(lines)
