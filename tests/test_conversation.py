"""Conversations: chat and converse answer a follow-up in context.

Chat runs on the embedded SmolLM2-135M, whose answers are poor: what is asserted is what
its prompt holds and how many tokens llama.cpp evaluated (its own counter), not what it
says. Converse runs a scripted engine (stages/llm/scripted_engine.py) because no embedded
model thinks: its second turn is played only for a prompt holding the first answer.
"""

import gc
import json

import llama_cpp
import pytest
from harness import Harness

from bus import records
from bus.frames import Generation, Request, Transcript
from bus.records import RecordError
from stages.instruct import Instruct
from stages.llm.conversation import Conversation, Conversations, latest_that_fit, window
from stages.router.meaning import decide
from stages.router.stage import Router
from stages.thinking.stage import Thinking

CAPITAL = "What is the capital of France?"
FOLLOW_UP = "And how many people live there?"


class Prompts:
    """Records each prompt the stage's engine is given, the engine running as it is."""

    def __init__(self, stage):
        self.seen: list[str] = []
        engine = stage.llm
        complete = engine.create_completion

        def recording(prompt, *args, **kwargs):
            if kwargs.get("stream"):
                self.seen.append(prompt)
            return complete(prompt, *args, **kwargs)

        engine.create_completion = recording


def ask(stage: Harness, utt: str, text: str, mode: str = "chat", conversation: int = 0) -> tuple[str, Generation]:
    stage.send("router", Request(mode=mode, text=text, conversation=conversation), utt=utt, reliable=True)
    answer = "".join(f.body.text for f in stage.published("keystrokes") if f.utt == utt)
    [report] = [f.body for f in stage.published("generation") if f.utt == utt]
    return answer, report


def evaluated(stage) -> int:
    """Prompt tokens llama.cpp has evaluated so far (its own counter)."""
    return llama_cpp.llama_perf_context(stage.llm._ctx.ctx).n_p_eval


def test_a_chat_follow_up_holds_the_first_turn_and_evaluates_only_its_new_tokens(tmp_path):
    chat = Harness(Instruct, tmp_path)
    prompts = Prompts(chat.stage)
    first, first_report = ask(chat, "u1", CAPITAL)
    before = evaluated(chat.stage)
    second, second_report = ask(chat, "u2", FOLLOW_UP)
    follow_up_evaluated = evaluated(chat.stage) - before

    assert CAPITAL in prompts.seen[1] and first.strip() in prompts.seen[1] and FOLLOW_UP in prompts.seen[1]
    assert prompts.seen[1].index(CAPITAL) < prompts.seen[1].index(first.strip()) < prompts.seen[1].index(FOLLOW_UP)
    assert second_report.prompt_tokens > first_report.prompt_tokens + first_report.tokens - 2
    # llama.cpp keeps the longest prefix shared with what it evaluated last: the first
    # turn and its answer are in its cache, so only the follow-up's own tokens are new.
    new_tokens = second_report.prompt_tokens - first_report.prompt_tokens - first_report.tokens
    assert follow_up_evaluated <= new_tokens + 4, (follow_up_evaluated, second_report.prompt_tokens)


def test_a_clarify_between_chat_turns_costs_the_follow_up_nothing(tmp_path):
    """The instruct stage keeps each mode's evaluated state: after a clarify, the chat
    follow-up still evaluates only its own new tokens, and answers exactly as it does
    with nothing between."""
    (tmp_path / "alone").mkdir(), (tmp_path / "mixed").mkdir()
    alone = Harness(Instruct, tmp_path / "alone")
    ask(alone, "u1", CAPITAL)
    answer_alone, _ = ask(alone, "u3", FOLLOW_UP)

    mixed = Harness(Instruct, tmp_path / "mixed")
    warmed = evaluated(mixed.stage)
    first, first_report = ask(mixed, "u1", CAPITAL)
    system = mixed.stage.count_tokens(mixed.stage.warm_up_prompt("chat"))
    assert evaluated(mixed.stage) - warmed <= first_report.prompt_tokens - system + 1, (
        "chat's system prompt was evaluated at warm-up"
    )
    ask(mixed, "u2", "um so we should uh go home", mode="clarify")
    before = evaluated(mixed.stage)
    answer, report = ask(mixed, "u3", FOLLOW_UP)
    new_tokens = report.prompt_tokens - first_report.prompt_tokens - first_report.tokens
    assert evaluated(mixed.stage) - before <= new_tokens + 4, (evaluated(mixed.stage) - before, report.prompt_tokens)
    assert answer == answer_alone


def test_modes_keep_their_own_conversations_and_clarify_none(tmp_path):
    stage = Harness(Instruct, tmp_path)
    prompts = Prompts(stage.stage)
    ask(stage, "u1", CAPITAL)
    ask(stage, "u2", "um so we should uh go home", mode="clarify")
    ask(stage, "u3", FOLLOW_UP)
    clarify, chat = prompts.seen[1], prompts.seen[2]
    assert CAPITAL not in clarify
    assert CAPITAL in chat and "go home" not in chat


def test_a_conversation_survives_a_restart_and_an_answer_given_again_has_its_first_prompt(tmp_path):
    chat = Harness(Instruct, tmp_path)
    first, _ = ask(chat, "u1", CAPITAL)
    before = Prompts(chat.stage)
    answer, _ = ask(chat, "u2", FOLLOW_UP)
    chat.crash()  # u2 not acknowledged: the router hands it over again
    again = Prompts(chat.stage)
    chat.clear()
    assert ask(chat, "u2", FOLLOW_UP)[0] == answer  # seeded by the utterance, the same prompt: the same text
    assert again.seen == before.seen and first.strip() in again.seen[0]
    assert again.seen[0].count(FOLLOW_UP) == 1, "the answer given before is not in its own prompt"
    chat.crash()
    third = Prompts(chat.stage)
    ask(chat, "u3", "Thanks.")
    assert CAPITAL in third.seen[0] and FOLLOW_UP in third.seen[0]


def test_a_new_conversation_starts_afresh(tmp_path):
    chat = Harness(Instruct, tmp_path)
    prompts = Prompts(chat.stage)
    ask(chat, "u1", CAPITAL)
    ask(chat, "u2", FOLLOW_UP, conversation=1)
    assert CAPITAL not in prompts.seen[1]
    ask(chat, "u3", "Thanks.", conversation=1)
    assert FOLLOW_UP in prompts.seen[2] and CAPITAL not in prompts.seen[2]


def first_question(prompt: str) -> int:
    return int(prompt.split("Question number ", 1)[1].split("?")[0])


@pytest.mark.parametrize("limit", ["context_tokens=400", "conversation_tokens=280"])
def test_a_conversation_keeps_to_its_budget_and_its_window_moves_seldom(tmp_path, limit):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": [{"pieces": [" A"] + [" word"] * 30 + ["."]}]}))
    stage = Harness(Instruct, tmp_path, f"stages.instruct.model=scripted:{script}", f"stages.instruct.{limit}")
    prompts = Prompts(stage.stage)
    reports = [ask(stage, f"u{n}", f"Question number {n}?")[1] for n in range(12)]
    settings = stage.stage.settings
    room = min(settings["conversation_tokens"], settings["context_tokens"] - stage.stage.answer_reserve("chat"))
    assert all(report.prompt_tokens <= room for report in reports)
    assert "Question number 0?" not in prompts.seen[-1] and "Question number 10?" in prompts.seen[-1]
    starts = [first_question(prompt) for prompt in prompts.seen]
    moves = sum(a != b for a, b in zip(starts, starts[1:]))
    # Dropping a turn at a time would move the window on every request once full
    # (12 requests of ~50 tokens each fill it after a handful).
    assert 1 <= moves <= 4, starts
    kept_after_move = [b - a for a, b in zip(starts, starts[1:]) if a != b]
    assert all(step > 1 for step in kept_after_move), starts


def test_converse_follow_up_holds_the_answer_but_never_the_thinking(tmp_path):
    first = {
        "when": ["17 times 23"],
        "pieces": ["<think>", "pondering", "</think>", "17", " times", " 23", " is", " 391", "."],
    }
    # played only for a prompt that holds the first answer
    second = {
        "when": ["17 times 23 is 391.", "divided by two"],
        "pieces": ["<think>", "halving", "</think>", "195", ".5", "."],
    }
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"metadata": {"general.architecture": "lfm2"}, "turns": [first, second]}))
    converse = Harness(Thinking, tmp_path, f"stages.thinking.model=scripted:{script}")
    assert ask(converse, "u1", "What is 17 times 23?", mode="converse")[0].strip() == "17 times 23 is 391."
    converse.crash()  # the conversation is in the state file
    prompts = Prompts(converse.stage)
    assert ask(converse, "u2", "And divided by two?", mode="converse")[0].strip() == "195.5."
    assert "pondering" not in prompts.seen[0]


def test_conversation_turns_and_saved_state():
    talk = Conversation(0)
    talk.remember("u1", "q1", "a1")
    talk.remember("u2", "q2", "a2")
    assert [turn.utt for turn in talk.before("u2")] == ["u1"]
    talk.remember("u2", "q2", "a2 again")  # answered again: replaces itself
    assert [turn.answer for turn in talk.turns] == ["a1", "a2 again"]
    assert talk.for_request(0) is talk and talk.for_request(1).turns == []
    assert latest_that_fit(talk.turns, lambda kept: len(kept) <= 1) == talk.turns[1:]
    assert latest_that_fit(talk.turns, lambda kept: False) == []
    assert talk.turns[0].since == "u1" and talk.turns[1].since == "u2"  # remembered with no window


def test_the_window_stays_while_it_fits_then_moves_to_half_the_budget():
    talk, windows = Conversation(0), []
    fits, fits_half = (lambda kept: len(kept) <= 4), (lambda kept: len(kept) <= 2)
    for n in range(10):
        held = window(talk.before(f"u{n}"), fits, fits_half)
        windows.append([turn.utt for turn in held])
        talk.remember(f"u{n}", f"q{n}", f"a{n}", held)
        assert window(talk.before(f"u{n}"), fits, fits_half) == held  # answered again: the same window
    assert windows == [
        [],
        ["u0"],
        ["u0", "u1"],
        ["u0", "u1", "u2"],
        ["u0", "u1", "u2", "u3"],
        ["u3", "u4"],
        ["u3", "u4", "u5"],
        ["u3", "u4", "u5", "u6"],
        ["u6", "u7"],
        ["u6", "u7", "u8"],
    ]
    assert records.typed(Conversations, records.plain(Conversations({"chat": talk}))) == Conversations({"chat": talk})
    with pytest.raises(RecordError):
        records.typed(Conversations, {"conversations": {"chat": {"number": 0, "turns": [{"utt": "u1"}]}}})


def test_new_conversation_is_a_spoken_command_and_a_control_command(tmp_path):
    assert decide("New conversation.", "chat", {}, set()).new_conversation
    assert decide(" start a new conversation", "converse", {}, set()).new_conversation
    assert not decide("A new conversation began.", "dictate", {}, set()).new_conversation
    router = Harness(Router, tmp_path, "stages.router.mode=chat")
    router.send("asr", Transcript(text="New conversation."), utt="u1", reliable=True)
    [nothing] = router.published("keystrokes")
    assert nothing.body.text == ""
    router.ack(nothing)
    assert router.stage.on_control("new-conversation", {}) == "new conversation (2)"
    router.crash()
    router.send("asr", Transcript(text=CAPITAL), utt="u2", reliable=True)
    [request] = router.published("request")
    assert (request.body.mode, request.body.conversation) == ("chat", 2)


def test_voxkey_conversation_new_tells_a_running_router():
    from conftest import LoneStage, voxkey

    from bus import frames

    router = LoneStage("router", ["asr", "instruct"])
    try:
        result = voxkey("conversation", "new", "--set", f"bus.run_dir={router.run_dir}")
        assert result.returncode == 0 and "new conversation (1)" in result.stderr, result.stderr
        router.send("asr", frames.Transcript(text=f"Chat. {CAPITAL}"), utt="u1", key="u1")
        request = router.frames(lambda f: f.topic == "request")[-1]
        assert (request.body.mode, request.body.conversation) == ("chat", 1)
    finally:
        router.close()


# --- through every stage process -----------------------------------------------------


def replay_twice(tmp_path, fixture: str, *args) -> tuple[str, list[dict]]:
    from conftest import voxkey
    from test_modes import concatenate

    recording, trace = tmp_path / "twice.wav", tmp_path / "trace.jsonl"
    concatenate([fixture, fixture], recording)
    result = voxkey("replay", recording, "--trace", trace, *args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, [json.loads(line) for line in trace.read_text().splitlines()]


def test_a_chat_asked_twice_holds_the_first_turn_in_the_second_prompt(tmp_path):
    typed, rows = replay_twice(tmp_path, "chat_capital.wav")
    first, second = rows
    assert first["mode"] == second["mode"] == "chat"
    # the same question again, now after the first question and its answer
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["generated_tokens"], rows


def test_a_converse_follow_up_is_answered_in_context(tmp_path):
    first = {
        "when": ["17 times 23"],
        "pieces": ["<think>", "pondering", "</think>", "17", " times", " 23", " is", " 391", "."],
    }
    # played only when the first answer stands before a second question
    again = {
        "when": ["17 times 23 is 391.<|im_end|>\n<|im_start|>user\n"],
        "pieces": ["As", " I", " said", ",", " 391", "."],
    }
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps({"metadata": {"general.architecture": "lfm2"}, "pace_ms": 25, "turns": [first, again]})
    )
    typed, rows = replay_twice(tmp_path, "converse_math.wav", "--set", f"stages.thinking.model=scripted:{script}")
    assert typed.strip() == "17 times 23 is 391. As I said, 391.", typed


def live_samplers() -> int:
    return sum(isinstance(thing, llama_cpp._internals.LlamaSampler) for thing in gc.get_objects())


def test_each_answer_leaves_at_most_the_engines_last_sampler_alive(tmp_path):
    """llama-cpp-python drops each completion's sampler chain in a reference cycle, with
    native memory (a vocabulary-sized buffer) the collector cannot see: without a full
    collection after each answer they piled up until a rare one, and RSS climbed all day."""
    chat = Harness(Instruct, tmp_path)
    for n in range(4):
        ask(chat, f"u{n}", f"Question number {n}?", conversation=n)
        assert live_samplers() <= 1
