"""The Thinking model's stream parser and doom-loop guard, fed whole transcripts split
every way: the events must not depend on the split, and thinking must never be typed."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.thinking.stream import (
    Answer,
    BadToolCall,
    DoomLoopGuard,
    StreamParser,
    Thought,
    ToolCall,
    parse_tool_calls,
)

CALL = "<|tool_call_start|>{}<|tool_call_end|>"
SECRET = "SECRET"  # every thinking text carries it; no answer may


def run(pieces: list[str], starts_in_thinking: bool = False) -> list:
    parser = StreamParser(starts_in_thinking=starts_in_thinking)
    events = [event for piece in pieces for event in parser.feed(piece)]
    return events + parser.finish()


def merged(events: list) -> list:
    """The events with neighbouring text of one kind joined: what no split may change."""
    out: list = []
    for event in events:
        if out and type(event) is type(out[-1]) and isinstance(event, (Thought, Answer)):
            out[-1] = type(event)(out[-1].text + event.text)
        else:
            out.append(event)
    return out


def answer_text(events: list) -> str:
    return "".join(event.text for event in events if isinstance(event, Answer))


def calls(events: list) -> list:
    return [event for event in events if isinstance(event, (ToolCall, BadToolCall))]


# name: (transcript, starts_in_thinking, answer, tool calls as (name, arguments) or error)
TRANSCRIPTS = {
    "thinking then answer": (
        "<think>SECRET: the user wants a greeting. Keep it short.</think>\n\nHello, world!",
        False,
        "Hello, world!",
        [],
    ),
    "answer only": ("Just the answer, nothing else.", False, "Just the answer, nothing else.", []),
    "thinking, call, answer": (
        "<think>SECRET plan: ask the clock.</think>\n"
        + CALL.format('[get_time(zone="UTC", precise=True)]')
        + "It is noon.",
        False,
        "It is noon.",
        [("get_time", {"zone": "UTC", "precise": True})],
    ),
    "two calls in one list": (
        "<think>SECRET</think>" + CALL.format('[a(x=1), b(y="z", more=[1, 2.5, None], flag=true)]') + "Done.",
        False,
        "Done.",
        [("a", {"x": 1}), ("b", {"y": "z", "more": [1, 2.5, None], "flag": True})],
    ),
    "not tags": (
        "<think>SECRET a < b, <|</think>a < b and x <| y, <thin ice> </b> <|im_start <",
        False,
        "a < b and x <| y, <thin ice> </b> <|im_start <",
        [],
    ),
    "stray close": ("The answer</think> goes on.<|im_end|>", False, "The answer goes on.", []),
    "pre-opened thinking": ("SECRET, no opening tag</think>The answer.", True, "The answer.", []),
    "unterminated think": ("Before. <think>SECRET still thinking when cut off <", False, "Before. ", []),
    "malformed call": (
        CALL.format("[oops(x=]") + "Sorry." + CALL.format('[go(1), os.system(c="rm"), f(x=open("y"))]'),
        False,
        "Sorry.",
        [
            "not a Python call list",
            "use keyword arguments",
            "function name must be a plain name",
            "argument x is not a literal value",
        ],
    ),
    "unterminated call": ("Wait." + CALL.format("[f(x=1)]")[:-3], False, "Wait.", ["tool call not terminated"]),
}
NAMES = sorted(TRANSCRIPTS)


def described(events: list) -> list:
    return [(c.name, c.arguments) if isinstance(c, ToolCall) else c.error for c in calls(events)]


@pytest.mark.parametrize("name", NAMES)
def test_a_transcript_fed_whole_gives_its_answer_and_calls(name):
    text, pre_opened, answer, call_spec = TRANSCRIPTS[name]
    events = run([text], pre_opened)
    assert answer_text(events) == answer
    assert SECRET not in answer_text(events)
    got = described(events)
    assert len(got) == len(call_spec)
    for item, spec in zip(got, call_spec):
        if isinstance(spec, tuple):
            assert item == spec
        else:
            assert spec in item


def assert_split_invariant(name: str, pieces: list[str]):
    text, pre_opened, answer, _ = TRANSCRIPTS[name]
    events = run(pieces, pre_opened)
    assert merged(events) == merged(run([text], pre_opened))
    assert answer_text(events) == answer
    assert not any(SECRET in e.text for e in events if isinstance(e, Answer))


@pytest.mark.parametrize("name", NAMES)
def test_every_two_piece_split_gives_the_same_events(name):
    text = TRANSCRIPTS[name][0]
    for cut in range(len(text) + 1):
        assert_split_invariant(name, [text[:cut], text[cut:]])


@pytest.mark.parametrize("name", NAMES)
def test_one_character_at_a_time_gives_the_same_events(name):
    assert_split_invariant(name, list(TRANSCRIPTS[name][0]))


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_random_splits_give_the_same_events(name, data):
    text = TRANSCRIPTS[name][0]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    assert_split_invariant(name, [text[a:b] for a, b in zip(bounds, bounds[1:])])


def test_answer_is_given_out_as_soon_as_it_cannot_be_a_tag():
    parser = StreamParser()
    assert parser.feed("Hello <") == [Answer("Hello ")]
    assert parser.feed("b") == [Answer("<b")]
    assert parser.feed(" <|tool") == [Answer(" ")]
    assert parser.feed("_call_start|>[f()]") == []
    assert parser.feed("<|tool_call_end|>") == [ToolCall("f", {}, "f()")]


def test_the_parser_says_when_it_is_thinking():
    parser = StreamParser(starts_in_thinking=True)
    assert parser.thinking
    parser.feed("SECRET</think>")
    assert not parser.thinking


# --- random transcripts built from known parts ------------------------------------------

# None of these pieces can join with another into a tag.
ANSWER_PIECES = ["a", "b", " ", "\n", "<", "<|", "|>", ">", "/", "<b>", "x <| y"]
THINKING_PIECES = [SECRET, " ", "<", "<|", "/", ">", "<think>", CALL.format("[f(x=1)]")]
ARGUMENTS = st.dictionaries(
    st.sampled_from(["x", "zone", "n"]),
    st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=3)),
    max_size=3,
)
PART = st.one_of(
    st.tuples(st.just("answer"), st.lists(st.sampled_from(ANSWER_PIECES), max_size=6).map("".join)),
    st.tuples(st.just("thinking"), st.lists(st.sampled_from(THINKING_PIECES), max_size=6).map("".join)),
    st.tuples(
        st.just("call"), st.lists(st.tuples(st.sampled_from(["f", "set_timer"]), ARGUMENTS), min_size=1, max_size=2)
    ),
)


def render(part) -> str:
    kind, body = part
    if kind == "answer":
        return body
    if kind == "thinking":
        return f"<think>{body}</think>"
    listed = ", ".join(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})" for name, args in body)
    return CALL.format(f"[{listed}]")


def expected_events(parts) -> list:
    events: list = []
    for kind, body in parts:
        if kind == "answer" and body:
            events.append(Answer(body))
        elif kind == "thinking" and body:
            events.append(Thought(body))
        elif kind == "call":
            events += [(name, args) for name, args in body]
    return events


def comparable(events: list) -> list:
    """Merged events with the answer's leading whitespace dropped, calls as (name, args)."""
    out, started = [], False
    for event in merged(events):
        if isinstance(event, Answer) and not started:
            event = Answer(event.text.lstrip())
            started = bool(event.text)
            if not started:
                continue
        out.append((event.name, event.arguments) if isinstance(event, ToolCall) else event)
    return merged(out)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PART, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_random_transcripts_split_randomly_come_out_as_built(parts, seed):
    text = "".join(map(render, parts))
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 10))))
    bounds = [0, *cuts, len(text)]
    events = run([text[a:b] for a, b in zip(bounds, bounds[1:])])
    assert comparable(events) == comparable(expected_events(parts))
    assert SECRET not in answer_text(events)


# --- tool call parsing ---------------------------------------------------------------------


def test_a_single_call_without_brackets_is_read():
    assert parse_tool_calls(' say(text="hi") ') == [ToolCall("say", {"text": "hi"}, 'say(text="hi")')]


@pytest.mark.parametrize(
    "raw, error",
    [
        ("[]", "empty tool call list"),
        ("[f(x=1, x=2)]", "argument x given twice"),
        ("[f(**opts)]", "use keyword arguments"),
        ("[f(x=__import__('os'))]", "argument x is not a literal value"),
        ("[f(x=1 + y)]", "argument x is not a literal value"),
        ("['text']", "not a function call"),
        ("[f(x=1)", "not a Python call list"),
    ],
)
def test_calls_that_are_not_plain_literal_calls_are_rejected(raw, error):
    (bad,) = parse_tool_calls(raw)
    assert isinstance(bad, BadToolCall) and error in bad.error


# --- doom-loop guard ---------------------------------------------------------------------

VARIED = (
    "The user asked for a timer of five minutes. I should check whether a timer already "
    "runs; if it does, replacing it might surprise them. Since they said 'a timer', one "
    "more is fine. Minutes, not seconds: five minutes is 300 seconds. The tool takes "
    "minutes, so I pass 5. Then I confirm briefly, because the answer is typed into "
    "whatever window has focus, and a long reply would be a nuisance there. Let me also "
    "consider the case where they meant an alarm at five o'clock instead; the wording "
    "'for five minutes' rules that out. A table might help:\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    "----------------------------------------\nThat is all I need to decide."
)


def tokens(text: str) -> list[str]:
    """Word-sized pieces, roughly what the model streams."""
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]


def first_reason(observe, pieces: list[str]) -> tuple[int, str] | None:
    for count, piece in enumerate(pieces, 1):
        if reason := observe(piece):
            return count, reason
    return None


def test_the_guard_stops_thinking_that_repeats_itself_soon():
    guard = DoomLoopGuard(thinking_budget=10_000)
    hit = first_reason(guard.observe_thinking, tokens(VARIED) + tokens("I think so. " * 500))
    assert hit is not None and hit[1] == "thinking repeats itself"
    assert hit[0] < len(tokens(VARIED)) + 50


def test_the_guard_stops_an_answer_that_repeats_itself():
    guard = DoomLoopGuard(thinking_budget=10_000)
    assert first_reason(guard.observe_answer, tokens("I think so. " * 500)) == (36, "answer repeats itself")


def test_the_guard_stops_thinking_over_budget():
    guard = DoomLoopGuard(thinking_budget=100)
    pieces = tokens(VARIED * 3)
    assert first_reason(guard.observe_thinking, pieces) == (100, "thinking budget of 100 tokens spent")


def test_the_guard_lets_varied_text_through():
    guard = DoomLoopGuard(thinking_budget=10_000)
    assert first_reason(guard.observe_thinking, tokens(VARIED)) is None
    assert first_reason(guard.observe_answer, list(VARIED)) is None


def test_the_guard_catches_a_repeated_paragraph_within_its_window():
    paragraph = "First I check the timer, then I check it again to be sure it runs. "
    guard = DoomLoopGuard(thinking_budget=10_000)
    assert first_reason(guard.observe_thinking, tokens(paragraph * 5)) is not None
    narrow = DoomLoopGuard(thinking_budget=10_000, window_chars=3 * len(paragraph) - 1)
    assert first_reason(narrow.observe_thinking, tokens(paragraph * 5)) is None
