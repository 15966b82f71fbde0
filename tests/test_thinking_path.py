"""The Thinking path end to end: the real `thinking` stage process, over the real bus and
keys, playing what LFM2.5-1.2B-Thinking emits -- its chat template, `<think>...</think>`,
a tool call, a doom loop that never closes its thinking -- token by token at a
realistic pace.

The engine is scripted (stages/llm/scripted_engine.py) because no embedded model emits these
tokens: SmolLM2-135M never thinks or calls a tool, and the LFM2.5 models are only ever
downloaded by the user. Everything else is real: the stage, its stream parser, its
tools, its guard, the router and keys. A script turn is played only for a prompt that
holds what it expects, so an answer typed proves what the stage fed back to the model.
"""

import json
import subprocess
import sys
import time
import tomllib

import pytest
from conftest import AUDIO, REPO, LoneStage, voxkey

from bus import config as configuration
from bus import frames
from bus.config import DEFAULTS_PATH
from stages.llm.scripted_engine import TOKEN, ScriptedLlama, ScriptError, load
from voxkey import settings

QUESTION = "17 times 23"  # as the router passes on what tiny.en hears in converse_math.wav
MARKER = "pondering"  # in every thinking; never to be typed
LFM2 = {"general.architecture": "lfm2"}  # what the GGUF says: the stage lays prompts out for LFM2
PACE_MS = 25  # LFM2.5-1.2B-Thinking decodes at ~40 tok/s on a Pi 5-class CPU
TOOL_RESULT = "<|im_start|>tool\n<|tool_response_start|>391<|tool_response_end|><|im_end|>"
BUDGET = tomllib.loads(DEFAULTS_PATH.read_text())["stages"]["thinking"]["thinking_budget_tokens"]


def tokens(text: str) -> list[str]:
    """Text split about as the model's tokenizer would: special tags whole, words with
    their leading space, each symbol alone."""
    return TOKEN.findall(text)


def write_script(tmp_path, *turns: dict, pace_ms: float = PACE_MS) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"metadata": LFM2, "pace_ms": pace_ms, "turns": list(turns)}, indent=1))
    return f"scripted:{path}"


CALLS_THE_CALCULATOR = {
    "when": [QUESTION],
    "pieces": tokens(
        f"<think>\nHmm, {MARKER}: the user wants 17 times 23. Arithmetic is safer with the calculator tool."
        '\n</think>\n\n<|tool_call_start|>[calculator(expression="17*23")]<|tool_call_end|>'
    ),
}
ANSWERS_FROM_THE_RESULT = {
    "when": [QUESTION, TOOL_RESULT],
    "pieces": tokens(
        f"<think>\nThe calculator says 391, {MARKER} over: that is the answer.\n</think>\n\n"
        "17 times 23 is 391.<|im_end|>"
    ),
}
# A doom loop as LFM2.5 falls into it: checking again and again, never closing its
# thinking, each round a little different (so only the token budget can end it).
THINKS_FOREVER = {
    "when": [QUESTION],
    "pieces": tokens(f"<think>\nHmm, {MARKER}. 17 times 23: 17 times 20 is 340, plus 51."),
    "repeat": [*tokens(" Wait, let me check that again, round"), " {n}", "."],
}
FORCED_ANSWER = tokens("17 times 23 is 391.<|im_end|>")
ANSWERS_ONCE_THINKING_IS_CLOSED = {"when": [QUESTION, "\n</think>\n"], "pieces": FORCED_ANSWER}


def converse(tmp_path, model: str) -> tuple[str, dict]:
    trace = tmp_path / "trace.jsonl"
    result = voxkey(
        "replay", AUDIO / "converse_math.wav", "--trace", trace, "--set", f"stages.thinking.model={model}", timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [row] = [json.loads(line) for line in trace.read_text().splitlines()]
    assert (row["mode"], row["llm_stage"], row["typed_by"]) == ("converse", "thinking", "thinking")
    return result.stdout, row


def assert_nothing_of_the_thinking(typed: str) -> None:
    for secret in (MARKER, "think>", "tool_call", "calculator", "im_end", "check that again"):
        assert secret not in typed.lower(), f"{secret!r} typed: {typed!r}"


def test_a_tool_call_runs_and_its_result_reaches_the_answer_and_no_thinking_is_typed(tmp_path):
    typed, row = converse(tmp_path, write_script(tmp_path, CALLS_THE_CALCULATOR, ANSWERS_FROM_THE_RESULT))
    # The second turn plays only for a prompt holding the calculator's result: 391 typed
    # means the tool ran and its result was fed back in LFM2's template.
    assert typed.strip() == "17 times 23 is 391.", typed
    assert_nothing_of_the_thinking(typed)
    assert row["outcome"] == "answered", row


def test_a_doom_loop_is_cut_at_the_thinking_budget_and_an_answer_forced(tmp_path):
    typed, row = converse(tmp_path, write_script(tmp_path, THINKS_FOREVER, ANSWERS_ONCE_THINKING_IS_CLOSED))
    assert typed.strip() == "17 times 23 is 391.", typed
    assert_nothing_of_the_thinking(typed)
    assert (row["outcome"], row["outcome_detail"]) == ("guard", f"thinking budget of {BUDGET} tokens spent"), row
    # The budget counts thinking tokens; `<think>` itself and the forced answer come on top.
    thinking_tokens = row["generated_tokens"] - len(FORCED_ANSWER)
    assert BUDGET <= thinking_tokens <= BUDGET + 2, row["generated_tokens"]


def test_a_script_that_cannot_be_played_stops_the_replay_naming_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"turns": [{"when": [QUESTION]}]}))
    result = voxkey("replay", AUDIO / "converse_math.wav", "--set", f"stages.thinking.model=scripted:{bad}")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert str(bad) in line and "stages.thinking.model" in line and "pieces" in line, line


class LoggedStage(LoneStage):
    """A LoneStage whose log can be read while it runs: what it did, in order."""

    def spawn(self):
        self.log_path = self.run_dir / f"{self.name}.log"
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", f"stages.{self.name}", "--config", str(self.config_path)], cwd=REPO, stderr=log
            )

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def wait_for_log(self, until, seconds: float = 60) -> None:
        """Until the log holds an event `until(event)` accepts (the stage's own account)."""
        deadline = time.monotonic() + seconds
        while not any(until(event) for event in self.events()):
            assert time.monotonic() < deadline and self.process.poll() is None, self.log_path.read_text()[-2000:]
            self.pump()
            self.downstream.receive(20)


def final_piece(frame) -> bool:
    return frame.topic == "keystrokes" and frame.body.final


LONG_ANSWER = {"when": [QUESTION], "pieces": tokens(f"<think>{MARKER}</think>"), "repeat": [" Counting", " {n}", ","]}


def cancelled_after(tmp_path, script_turn: dict, started) -> tuple[list, list[dict]]:
    """Send a converse request, cancel it once `started(log event)`, and return what the
    stage sent and its log."""
    script = f"stages.thinking.model={write_script(tmp_path, script_turn)}"
    stage = LoggedStage("thinking", ["router"], script, "log.user_text=true")  # `started` may read a token's text
    try:
        stage.send("router", frames.Request(mode="converse", text=f"What is {QUESTION}?"), utt="cut", key="cut")
        stage.wait_for_log(started)
        stage.send("router", frames.Cancel(reason="new speech"), utt="cut")
        got = stage.frames(final_piece)
        return got, stage.events()
    finally:
        stage.close()


def tokens_after_cancel(events: list[dict]) -> int:
    [taken] = [i for i, event in enumerate(events) if event["event"] == "cancel taken"]
    return sum(event["event"] == "scripted token" for event in events[taken:])


def test_a_cancel_stops_thinking_within_one_token(tmp_path):
    got, events = cancelled_after(tmp_path, THINKS_FOREVER, lambda event: event["event"] == "thinking")
    [report] = [f.body for f in got if f.topic == "generation"]
    assert report.outcome == "cancelled" and report.tokens < BUDGET
    assert tokens_after_cancel(events) <= 1
    assert "".join(f.body.text for f in got if f.topic == "keystrokes") == ""  # thinking is never typed


def test_a_cancel_stops_an_answer_within_one_token(tmp_path):
    got, events = cancelled_after(
        tmp_path, LONG_ANSWER, lambda event: event["event"] == "scripted token" and "Counting" in event["text"]
    )
    [report] = [f.body for f in got if f.topic == "generation"]
    assert report.outcome == "cancelled" and report.tokens < 512
    assert tokens_after_cancel(events) <= 1


def test_a_turn_expecting_a_result_not_fed_back_is_never_played(tmp_path):
    """What gives the tool test its teeth: a turn expecting a result the stage did not
    feed back is not played; the model is only asked again, as if it had no result,
    until the guard gives up and the notice is typed."""
    expects_another_result = {**ANSWERS_FROM_THE_RESULT, "when": [QUESTION, TOOL_RESULT.replace("391", "392")]}
    stage = LoneStage(
        "thinking",
        ["router"],
        f"stages.thinking.model={write_script(tmp_path, CALLS_THE_CALCULATOR, expects_another_result)}",
    )
    try:
        stage.send("router", frames.Request(mode="converse", text=f"What is {QUESTION}?"), utt="u", key="u")
        got = stage.frames(final_piece)
    finally:
        stage.close()
    [report] = [f.body for f in got if f.topic == "generation"]
    assert report.outcome == "guard", report
    assert "".join(f.body.text for f in got if f.topic == "keystrokes") == "(no answer)"


def test_the_scripted_engine_plays_the_last_turn_meant_for_the_prompt(tmp_path):
    engine = ScriptedLlama(load(write_script(tmp_path, CALLS_THE_CALCULATOR, ANSWERS_FROM_THE_RESULT, pace_ms=0)), 4096)

    def play(prompt: str, max_tokens: int = 512, stop: list[str] = ()) -> str:
        return "".join(
            chunk["choices"][0]["text"]
            for chunk in engine.create_completion(prompt, max_tokens, list(stop), stream=True)
        )

    assert play(f"user: {QUESTION}").endswith("<|tool_call_end|>")
    assert play(f"user: {QUESTION} {TOOL_RESULT}").endswith("391.<|im_end|>")
    assert play(f"user: {QUESTION} {TOOL_RESULT}", stop=["<|im_end|>"]).endswith("391.")
    assert play(f"user: {QUESTION}", max_tokens=3) == "<think>\nHmm"
    with pytest.raises(ScriptError, match="script.json"):
        play("something else")


def test_bad_scripts_are_refused_by_the_configuration_with_the_file_named(tmp_path):
    cases = {
        "missing.json": None,
        "not_json.json": "{turns: []}",
        "no_turns.json": json.dumps({"turns": []}),
        "bad_piece.json": json.dumps({"turns": [{"pieces": ["ok", 3]}]}),
        "bad_pace.json": json.dumps({"pace_ms": -1, "turns": [{"pieces": ["ok"]}]}),
        "unknown_key.json": json.dumps({"turns": [{"pieces": ["ok"]}], "speed": 2}),
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(configuration.ConfigError) as refused:
            settings.load(overrides=[f"stages.thinking.model=scripted:{tmp_path / name}"])
        message = str(refused.value)
        assert message.startswith("stages.thinking.model: script ") and name in message and "\n" not in message, message
    with pytest.raises(configuration.ConfigError, match="only for a language model"):
        settings.load(overrides=[f"stages.asr.model=scripted:{tmp_path / 'x.json'}"])
