"""The instruct stage as a real process with the embedded SmolLM2: streaming, cancellation,
and what model output may reach the keyboard."""

from conftest import LoneStage

from bus import frames
from bus.text import safe_text

LONG_ANSWER = "Tell me a long story about a dragon who learns to bake bread."


def pieces(got: list) -> list[str]:
    return [f.body.text for f in got if f.topic == "keystrokes" and f.body.text]


def final_piece(frame) -> bool:
    return frame.topic == "keystrokes" and frame.body.final


def test_chat_streams_and_a_cancel_stops_typing_within_one_token():
    instruct = LoneStage("instruct", ["router"])
    try:
        instruct.send("router", frames.Request(mode="chat", text=LONG_ANSWER, lead=""), utt="full", key="full")
        full = instruct.frames(final_piece)
        assert len(pieces(full)) >= 10, "the uncancelled answer streams piece by piece"
        assert full[-2].topic == "generation" and full[-2].body.outcome == "answered"
        assert all(f.to == "router" and f.key == f"full+{f.body.offset}" for f in full if f.topic == "keystrokes")

        instruct.send("router", frames.Request(mode="chat", text=LONG_ANSWER, lead=""), utt="cut", key="cut")
        before_cancel = instruct.frames(lambda f: f.topic == "keystrokes" and f.body.text)
        instruct.send("router", frames.Cancel(reason="new speech"), utt="cut")
        after_cancel = instruct.frames(final_piece)
        # One piece may already be on the wire when the cancel is sent, and one more may
        # be decoding when it arrives; nothing after that.
        assert len(pieces(after_cancel)) <= 2, pieces(after_cancel)
        assert after_cancel[-2].body.outcome == "cancelled"
        assert len(pieces(before_cancel + after_cancel)) < len(pieces(full))
    finally:
        instruct.close()


def test_a_request_cancelled_before_it_starts_types_nothing():
    instruct = LoneStage("instruct", ["router"])
    try:
        instruct.send("router", frames.Request(mode="chat", text=LONG_ANSWER), utt="first", key="first")
        instruct.send("router", frames.Request(mode="chat", text=LONG_ANSWER), utt="second", key="second")
        instruct.send("router", frames.Cancel(reason="new speech"), utt="second")
        got = instruct.frames(lambda f: final_piece(f) and f.utt == "second")
        second = [f for f in got if f.utt == "second"]
        assert pieces(second) == [] and [f.body.outcome for f in second if f.topic == "generation"] == ["cancelled"]
    finally:
        instruct.close()


def test_a_clarify_that_cannot_finish_types_what_was_said():
    """What the user said is never lost: a cancelled rewrite types the original."""
    instruct = LoneStage("instruct", ["router"])
    try:
        said = "um so I think we should uh go home now"
        instruct.send("router", frames.Request(mode="chat", text=LONG_ANSWER), utt="busy", key="busy")
        instruct.send("router", frames.Request(mode="clarify", text=said), utt="said", key="said")
        instruct.send("router", frames.Cancel(reason="stop"), utt="said")
        got = instruct.frames(lambda f: final_piece(f) and f.utt == "said")
        assert "".join(pieces([f for f in got if f.utt == "said"])) == said
        [report] = [f.body for f in got if f.topic == "generation" and f.utt == "said"]
        assert (report.outcome, report.detail) == ("fallback", "cancelled")
    finally:
        instruct.close()


def test_a_request_is_acknowledged_once_its_pieces_are():
    instruct = LoneStage("instruct", ["router"])
    try:
        instruct.send("router", frames.Request(mode="chat", text="Say hello."), utt="ours", key="ours")
        got = instruct.frames(final_piece)
        router = instruct.neighbours["router"]

        def acked() -> list:
            return [f for f in instruct.frames(lambda f: f.topic == "ack", seconds=2) if f.topic == "ack"]

        assert not any(f.topic == "ack" for f in got)
        for piece in [f for f in got if f.topic == "keystrokes"]:
            router.send(
                frames.Frame(body=frames.Ack(topic="keystrokes", keys=[piece.key]), src="router", to="instruct")
            )
        [ack] = acked()
        assert (ack.to, ack.body.topic, ack.body.keys) == ("router", "request", ["ours"])
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
    shared = len(stage.llm.tokenize(stage.warm_up_prompt("converse").encode(), add_bos=False, special=True))
    assert shared > 300, "the warm-up covers the system prompt and the tool list"
    assert evaluated <= prompt_tokens - shared + 1, f"{evaluated} of {prompt_tokens} prompt tokens evaluated"
