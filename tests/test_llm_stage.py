"""The instruct stage as a real process with the embedded SmolLM2: streaming, cancellation,
and what model output may reach the keyboard."""

from bus import frames
from bus.text import safe_text

from conftest import LoneStage

LONG_ANSWER = "Tell me a long story about a dragon who learns to bake bread."


def pieces(got: list) -> list[str]:
    return [f.body.text for f in got if f.topic == "keystrokes" and f.body.text]


def test_chat_streams_and_a_cancel_stops_typing_within_one_token():
    instruct = LoneStage("instruct", ["router", "vad"])
    try:
        router = instruct.upstream["router"]
        router.publish(frames.Request(mode="chat", text=LONG_ANSWER, lead=""), utt="full")
        full = instruct.frames(lambda f: f.topic == "generation")
        assert len(pieces(full)) >= 10, "the uncancelled answer streams piece by piece"
        assert full[-1].body.outcome == "answered" and full[-2].body.final

        router.publish(frames.Request(mode="chat", text=LONG_ANSWER, lead=""), utt="cut")
        before_cancel = instruct.frames(lambda f: f.topic == "keystrokes" and f.body.text)
        instruct.upstream["vad"].publish(frames.Cancel(reason="new speech"), utt="cut")
        after_cancel = instruct.frames(lambda f: f.topic == "generation")
        # One piece may already be on the wire when the cancel is sent, and one more may
        # be decoding when it arrives; nothing after that.
        assert len(pieces(after_cancel)) <= 2, pieces(after_cancel)
        assert after_cancel[-1].body.outcome == "cancelled"
        assert len(pieces(before_cancel + after_cancel)) < len(pieces(full))
        assert after_cancel[-2].topic == "keystrokes" and after_cancel[-2].body.final
    finally:
        instruct.close()


def test_a_request_cancelled_before_it_starts_types_nothing():
    instruct = LoneStage("instruct", ["router", "vad"])
    try:
        router = instruct.upstream["router"]
        router.publish(frames.Request(mode="chat", text=LONG_ANSWER), utt="first")
        router.publish(frames.Request(mode="chat", text=LONG_ANSWER), utt="second")
        instruct.upstream["vad"].publish(frames.Cancel(reason="new speech"), utt="second")
        got = instruct.frames(lambda f: f.topic == "generation" and f.utt == "second")
        second = [f for f in got if f.utt == "second"]
        assert pieces(second) == [] and second[-1].body.outcome == "cancelled"
    finally:
        instruct.close()


def test_requests_for_other_modes_are_left_to_their_stage():
    instruct = LoneStage("instruct", ["router", "vad"])
    try:
        router = instruct.upstream["router"]
        router.publish(frames.Request(mode="converse", text="What is 2 plus 2?"), utt="theirs")
        router.publish(frames.Request(mode="chat", text="Say hello."), utt="ours")
        got = instruct.frames(lambda f: f.topic == "generation")
        assert {f.utt for f in got} == {"ours"}
    finally:
        instruct.close()


def test_model_text_is_typed_as_text_only():
    hostile = "ok\x1b[31m\x07\x08\u202eevil\r\n$ rm -rf ~\tdone\u200d✓"
    assert safe_text(hostile, allow_newlines=False) == "ok[31mevil $ rm -rf ~ done\u200d✓"
    assert safe_text(hostile, allow_newlines=True) == "ok[31mevil\n$ rm -rf ~ done\u200d✓"


def test_warm_up_evaluates_the_system_prompt_a_first_request_then_skips():
    """llama.cpp reuses the longest prefix a prompt shares with the last one evaluated:
    after warm-up, the Thinking model's first request evaluates only its own message,
    not the ~400-token system prompt and tool list before it. Counted in tokens the
    model evaluated (llama.cpp's own counter), not timed."""
    import llama_cpp

    from bus import config as configuration
    from stages.thinking.stage import Thinking
    from stages.thinking.tools import tool_specs

    stage = Thinking(configuration.load())
    stage.setup()  # loads the embedded model and warms it up
    context = stage.llm._ctx.ctx
    before = llama_cpp.llama_perf_context(context).n_p_eval
    prompt = stage.prompt("converse", [stage.user_message("converse", "What is two plus two?")], tool_specs())
    prompt_tokens = len(stage.llm.tokenize(prompt.encode(), add_bos=False, special=True))
    stage.llm.create_completion(prompt, max_tokens=1)
    evaluated = llama_cpp.llama_perf_context(context).n_p_eval - before
    shared = len(stage.llm.tokenize(stage.warm_up_prompt().encode(), add_bos=False, special=True))
    assert shared > 300, "the warm-up covers the system prompt and the tool list"
    assert evaluated <= prompt_tokens - shared + 1, f"{evaluated} of {prompt_tokens} prompt tokens evaluated"
