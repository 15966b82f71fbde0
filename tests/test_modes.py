"""Clarify, chat and converse end to end: the real fixtures through every stage process,
with the embedded SmolLM2-135M in both model stages. A 135M model's wording is not
asserted -- only where each utterance went, in which mode, and that model text was typed."""

import json
import wave

import numpy as np
from conftest import AUDIO, spoken, voxkey, words
from harness import Harness

from bus.frames import Transcript, now_ns
from stages.capture import audio
from stages.instruct import is_rewrite
from stages.router.meaning import decide
from stages.router.stage import Router


def traced_replay(path, tmp_path, *args) -> tuple[str, list[dict]]:
    trace = tmp_path / "trace.jsonl"
    result = voxkey("replay", path, "--trace", trace, *args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, [json.loads(line) for line in trace.read_text().splitlines()]


def test_chat_prefix_heard_as_yet_reaches_the_instruct_model(tmp_path):
    typed, rows = traced_replay(AUDIO / "chat_capital.wav", tmp_path)
    [row] = rows
    assert (row["mode"], row["llm_stage"], row["typed_by"], row["outcome"]) == (
        "chat",
        "instruct",
        "instruct",
        "answered",
    )
    assert typed.strip() and typed == row["text"]
    assert words(typed) != words("yet what is the capital of france")  # an answer, not the question
    assert row["ttft_ms"] > 0 and row["prompt_tokens"] > 0 and row["tokens_per_s"] > 0


def test_clarify_prefix_reaches_the_instruct_model_which_rewrites(tmp_path):
    typed, rows = traced_replay(AUDIO / "clarify_launch.wav", tmp_path)
    [row] = rows
    assert (row["mode"], row["llm_stage"], row["typed_by"]) == ("clarify", "instruct", "instruct")
    assert_rewrite_or_original(typed, row, spoken("clarify_launch.wav").split(".", 1)[1])
    assert not typed.lower().startswith("clarify")


def assert_rewrite_or_original(typed: str, row: dict, said: str) -> None:
    """Either the model's text passed the rewrite check, or the original was typed."""
    assert row["outcome"] in ("rewritten", "fallback")
    if row["outcome"] == "rewritten":
        assert is_rewrite(said, typed)
    else:
        assert set(words(typed)) <= set(words(said))


def test_converse_prefix_heard_as_congress_reaches_the_thinking_model(tmp_path):
    typed, rows = traced_replay(AUDIO / "converse_math.wav", tmp_path)
    [row] = rows
    assert (row["mode"], row["llm_stage"], row["typed_by"]) == ("converse", "thinking", "thinking")
    assert typed.strip() and "<think>" not in typed and "tool_call" not in typed
    assert row["ttft_ms"] > 0


def concatenate(names: list[str], path, gap_s: float = 1.5) -> None:
    silence = np.zeros(int(gap_s * 16_000), np.int16)
    parts = []
    for name in names:
        parts += [audio.read_all(AUDIO / name), silence]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(np.concatenate(parts).tobytes())


def test_switch_to_clarify_mode_sticks_for_the_next_utterance(tmp_path):
    recording = tmp_path / "switch_then_dictate.wav"
    concatenate(["mode_switch.wav", "dictate_report.wav"], recording)
    typed, rows = traced_replay(recording, tmp_path)
    switch, row = rows
    assert (switch["text"], switch["typed_by"]) == ("", "router")  # the switch itself types nothing
    assert (row["mode"], row["llm_stage"], row["typed_by"]) == ("clarify", "instruct", "instruct")
    assert_rewrite_or_original(typed, row, spoken("dictate_report.wav"))


def test_mode_can_be_set_in_config_for_a_whole_replay(tmp_path):
    typed, rows = traced_replay(AUDIO / "dictate_report.wav", tmp_path, "--set", "stages.router.mode=chat")
    assert [row["mode"] for row in rows] == ["chat"]


def test_mode_words_as_whisper_really_writes_them():
    """Transcripts measured with tiny.en on the fixtures and on an unseen recording
    ("Conders,"): recognised by sound, with no list of mishearings."""
    mode_words = {}
    heard = {
        " yet, what is the capital of France?": ("chat", "What is the capital of France?"),
        " Converse, what is 17 times 23?": ("converse", "What is 17 times 23?"),
        " Congress, what is 17 times 23?": ("converse", "What is 17 times 23?"),
        " Conders, what is 17 times 23?": ("converse", "What is 17 times 23?"),
        " clarify. So I think we should probably move the launch.": (
            "clarify",
            "So I think we should probably move the launch.",
        ),
        " Chat. What is the capital of France?": ("chat", "What is the capital of France?"),
        " Yet another meeting was moved.": ("dictate", "Yet another meeting was moved."),
        " Congress passed the bill.": ("dictate", "Congress passed the bill."),
        " New line.": ("dictate", "New line."),
    }
    for transcript, (mode, text) in heard.items():
        decision = decide(transcript, "dictate", mode_words, {"stop"})
        assert (decision.mode, decision.text) == (mode, text), transcript
    assert decide(" Switch to clarify mode.", "dictate", mode_words, set()).sticky == "clarify"
    assert decide("Switch to Clarify mode", "chat", mode_words, set()).sticky == "clarify"
    assert decide("go back to dictate mode", "chat", mode_words, set()).sticky == "dictate"
    assert decide("Stop.", "chat", mode_words, {"stop"}).stop
    assert decide("Scratch that.", "chat", mode_words, set()).mode == "dictate"  # editing works in every mode


def test_a_mode_set_by_command_applies_to_what_is_said_after_it(tmp_path):
    """`voxkey mode chat` given while a dictated sentence still waits (its pause, its
    recognition): that sentence is typed; what is said after the command goes to chat.
    A restart of the router in between changes nothing."""
    router = Harness(Router, tmp_path)
    said_ns = now_ns()
    assert router.stage.on_control("mode", {"mode": "chat", "since_ns": said_ns + 1}) == "mode chat"
    router.crash()
    waiting = Transcript("Please send the report.")
    router.send("asr", waiting, utt="u1", reliable=True, marks={"speech_end": said_ns})
    [typed] = router.published("keystrokes")
    assert typed.body.text == "Please send the report."
    router.ack(typed)
    router.send(
        "asr", Transcript("What is the capital of France?"), utt="u2", reliable=True, marks={"speech_end": said_ns + 2}
    )
    [asked] = router.published("request")
    assert (asked.body.mode, asked.body.text) == ("chat", "What is the capital of France?")
