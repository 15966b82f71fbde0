"""What is typed is what was said: a default-mode session of sentences that begin with a
mode's name used as an ordinary word, ending with "Thank you.", replayed through every
real process (capture, vad, asr with the embedded tiny.en, router, instruct, thinking,
keys), is typed whole, once, in order, by the router itself: no sentence went to a
model, no word was taken for a mode's name, the closing "Thank you." was not judged
a hallucination.

The sentences are the held-out clips of tests/audio/modes (group "ordinary", never
used to choose a threshold) and tests/audio/short, made with the Piper voice."""

import json
import re

import numpy as np
from conftest import AUDIO, voxkey

from bench import modeset
from bench.pipeline import write_wav
from bench.workload import word_error_rate

SENTENCES = [
    "Chat logs show three errors in the build.",
    "Converse with the team tomorrow about the launch.",
    "Dictate the letter to Anna before lunch.",
    "Clarify the scope before we start the work.",
]
CLOSING = "Thank you."
GAP_S = 1.2  # between sentences: more than vad's end-of-speech wait, as a speaker pauses
MAX_WORD_ERROR_RATE = 0.2  # tiny.en mishears a word or two ("Chat log show"); voxkey drops none


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def clip_of(directory, text: str, **wanted) -> np.ndarray:
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    [entry] = [
        c for c in manifest["clips"] if c["text"] == text and all(c.get(key) == value for key, value in wanted.items())
    ]
    return modeset.clip(directory, entry)


def test_a_session_of_ordinary_sentences_ending_thank_you_is_typed_as_said(tmp_path):
    gap = np.zeros(int(GAP_S * 16_000), np.int16)
    parts = [clip_of(AUDIO / "modes", text, speed=1.0) for text in SENTENCES]
    parts.append(clip_of(AUDIO / "short", CLOSING, speed=0.8, snr=None))
    session = write_wav(tmp_path / "session.wav", np.concatenate([p for part in parts for p in (part, gap)]))
    trace = tmp_path / "trace.jsonl"
    result = voxkey("replay", session, "--trace", trace, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    typed = result.stdout
    assert all(row.get("typed_by", "router") == "router" and "mode" not in row for row in rows), rows  # no model
    expected = words(" ".join([*SENTENCES, CLOSING]))
    assert word_error_rate(expected, words(typed)) <= MAX_WORD_ERROR_RATE, typed
    assert len(rows) == len(parts), rows  # one utterance each: none lost, none split
    for row, said in zip(rows, [*SENTENCES, CLOSING]):  # in order; no first word taken for a mode's name
        assert words(row["text"])[:1] != words(said)[1:2], (said, row["text"])
    assert words(typed)[-2:] == ["thank", "you"], typed
