"""Splits the Thinking model's streamed text into what may be typed and what may not.

Consumes: the text pieces LFM2.5-1.2B-Thinking streams (tokens, or any other split of
the same text), through `StreamParser.feed(piece)` and, at the end, `finish()`.
The model writes its reasoning inside `<think>` ... `</think>` before the answer, and
calls tools as a Python list of calls inside `<|tool_call_start|>` ... `<|tool_call_end|>`,
e.g. `[set_timer(minutes=5), say(text="done")]`.

Produces events: `Answer` (text to type), `Thought` (reasoning, never to be typed),
`ToolCall` (one parsed call) and `BadToolCall` (a call that could not be parsed: report
it, do not type it).

Guarantees:
- Thinking text and tool-call text never come out as `Answer`. An unterminated
  `<think>` at the end of the stream was thinking; an unterminated tool call is a
  `BadToolCall`.
- The events do not depend on how the text was split: text that may be the start of a
  tag is held back until it is known not to be one, and everything else is given out
  at once, so the answer can be typed while it streams.
- Whitespace before the first character of the answer is dropped (the model puts a
  blank line after `</think>`); a stray `</think>`, `<|tool_call_end|>` or `<|im_end|>`
  outside its place is dropped, not typed.
- Tool calls are read with `ast`, never evaluated: a plain function name and keyword
  arguments whose values are literals (JSON's true/false/null are accepted too).

`DoomLoopGuard` watches the same text for the two ways the model runs away: thinking
too long, and saying the same thing over and over.
"""

import ast
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Thought:
    text: str


@dataclass(frozen=True)
class Answer:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict
    raw: str


@dataclass(frozen=True)
class BadToolCall:
    raw: str
    error: str


Event = Thought | Answer | ToolCall | BadToolCall

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
CALL_OPEN = "<|tool_call_start|>"
CALL_CLOSE = "<|tool_call_end|>"
TURN_END = "<|im_end|>"


class Mode(Enum):
    ANSWER = "answer"
    THINKING = "thinking"
    CALL = "call"


# The tags each mode listens for, and the mode each one leads to. Only these are tags
# there: inside thinking a `<think>` or a call tag is just more thinking.
TAGS: dict[Mode, dict[str, Mode]] = {
    Mode.ANSWER: {
        THINK_OPEN: Mode.THINKING,
        CALL_OPEN: Mode.CALL,
        THINK_CLOSE: Mode.ANSWER,
        CALL_CLOSE: Mode.ANSWER,
        TURN_END: Mode.ANSWER,
    },
    Mode.THINKING: {THINK_CLOSE: Mode.ANSWER},
    Mode.CALL: {CALL_CLOSE: Mode.ANSWER},
}


def first_tag(text: str, tags: dict[str, Mode]) -> tuple[int, str] | None:
    """Where the earliest tag in `text` starts, and which tag it is."""
    found = [(at, tag) for tag in tags if (at := text.find(tag)) >= 0]
    return min(found) if found else None


def partial_tag_length(text: str, tags: dict[str, Mode]) -> int:
    """How many characters at the end of `text` could still grow into a tag."""
    longest = max(map(len, tags)) - 1
    for length in range(min(len(text), longest), 0, -1):
        tail = text[-length:]
        if any(tag.startswith(tail) for tag in tags):
            return length
    return 0


class StreamParser:
    """Feed it the model's text in pieces; it returns the events each piece completes."""

    def __init__(self, starts_in_thinking: bool = False):
        # The chat template may open `<think>` itself, so the model's first word is thinking.
        self._mode = Mode.THINKING if starts_in_thinking else Mode.ANSWER
        self._pending = ""
        self._answer_started = False

    @property
    def thinking(self) -> bool:
        """Whether the model is inside its reasoning right now."""
        return self._mode is Mode.THINKING

    def feed(self, piece: str) -> list[Event]:
        self._pending += piece
        events: list[Event] = []
        while hit := first_tag(self._pending, TAGS[self._mode]):
            at, tag = hit
            events += self._segment(self._pending[:at])
            self._pending = self._pending[at + len(tag) :]
            self._mode = TAGS[self._mode][tag]
        if self._mode is not Mode.CALL:
            # A call is parsed only whole; text is given out up to a possible tag start.
            ready = len(self._pending) - partial_tag_length(self._pending, TAGS[self._mode])
            events += self._segment(self._pending[:ready])
            self._pending = self._pending[ready:]
        return events

    def finish(self) -> list[Event]:
        """The events the end of the stream completes. What was held back as a possible
        tag start was text after all; an open call never closed."""
        rest, self._pending = self._pending, ""
        if self._mode is Mode.CALL:
            return [BadToolCall(rest, "tool call not terminated")]
        return self._segment(rest)

    def _segment(self, text: str) -> list[Event]:
        """The events for `text`, which lies wholly inside the current mode."""
        if self._mode is Mode.CALL:
            return parse_tool_calls(text)
        if self._mode is Mode.THINKING:
            return [Thought(text)] if text else []
        if not self._answer_started:
            text = text.lstrip()
            self._answer_started = bool(text)
        return [Answer(text)] if text else []


# --- tool calls ----------------------------------------------------------------------

JSON_WORDS = {"true": True, "false": False, "null": None}


class _JsonWords(ast.NodeTransformer):
    # Small models mix JSON into Python calls (`flag=true`); that is still a literal.
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in JSON_WORDS:
            return ast.copy_location(ast.Constant(JSON_WORDS[node.id]), node)
        return node


def parse_tool_calls(raw: str) -> list[ToolCall | BadToolCall]:
    """The calls in the text between the call tags: `[a(x=1), b(y="z")]` or `a(x=1)`."""
    source = raw.strip()
    try:
        body = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return [BadToolCall(raw, f"not a Python call list: {getattr(error, 'msg', error)}")]
    calls = body.elts if isinstance(body, ast.List) else [body]
    if not calls:
        return [BadToolCall(raw, "empty tool call list")]
    return [parse_call(node, source) for node in calls]


def parse_call(node: ast.expr, source: str) -> ToolCall | BadToolCall:
    raw = ast.get_source_segment(source, node) or source
    try:
        return ToolCall(call_name(node), call_arguments(node), raw)
    except ValueError as error:
        return BadToolCall(raw, str(error))


def call_name(node: ast.expr) -> str:
    if not isinstance(node, ast.Call):
        raise ValueError("not a function call")
    if not isinstance(node.func, ast.Name):
        raise ValueError("function name must be a plain name")
    return node.func.id


def call_arguments(node: ast.Call) -> dict:
    if node.args:
        raise ValueError("use keyword arguments")
    arguments = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError("use keyword arguments, not **")
        if keyword.arg in arguments:
            raise ValueError(f"argument {keyword.arg} given twice")
        arguments[keyword.arg] = literal(keyword.value, keyword.arg)
    return arguments


def literal(node: ast.expr, name: str):
    try:
        return ast.literal_eval(_JsonWords().visit(node))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise ValueError(f"argument {name} is not a literal value") from None


# --- runaway generation ----------------------------------------------------------------


def repeats_at_tail(text: str, min_unit: int, repeats: int) -> bool:
    """Whether `text` ends with one string of at least `min_unit` characters written
    `repeats` times in a row.

    A unit of length L repeated means the last `min_unit` characters also stand L
    characters earlier, so only the distances where they recur (found by `rfind`, few
    in varied text) are checked, each with one slice comparison.
    """
    n = len(text)
    if min_unit <= 0 or n < min_unit * repeats:
        return False
    key = text[-min_unit:]
    end = n - min_unit  # a recurrence must end here or earlier, so that L >= min_unit
    while (start := text.rfind(key, 0, end)) >= 0:
        unit = n - min_unit - start
        if unit * repeats > n:
            return False
        if text[n - repeats * unit : n - unit] == text[n - (repeats - 1) * unit :]:
            return True
        end = start + min_unit - 1
    return False


@dataclass
class DoomLoopGuard:
    """Says when the model should be made to stop: its thinking has spent
    `thinking_budget` tokens, or its thinking or answer repeats itself -- one string of
    at least `min_repeat_chars` characters `max_repeats` times in a row at the end of
    the last `window_chars` characters (so units longer than window/max_repeats are
    not seen). Each call costs O(window_chars), whatever has gone before."""

    thinking_budget: int
    window_chars: int = 400
    min_repeat_chars: int = 40
    max_repeats: int = 3
    _thinking_tokens: int = field(default=0, init=False)
    _thinking_tail: str = field(default="", init=False)
    _answer_tail: str = field(default="", init=False)

    def observe_thinking(self, text: str) -> str | None:
        """Call once per thinking token. A reason to stop thinking, or None."""
        self._thinking_tokens += 1
        self._thinking_tail = self._tail(self._thinking_tail, text)
        if self._thinking_tokens >= self.thinking_budget:
            return f"thinking budget of {self.thinking_budget} tokens spent"
        return self._repetition(self._thinking_tail, "thinking repeats itself")

    def observe_answer(self, text: str) -> str | None:
        """Call with each piece of answer text. A reason to stop answering, or None."""
        self._answer_tail = self._tail(self._answer_tail, text)
        return self._repetition(self._answer_tail, "answer repeats itself")

    def _tail(self, tail: str, text: str) -> str:
        return (tail + text)[-self.window_chars :]

    def _repetition(self, tail: str, reason: str) -> str | None:
        return reason if repeats_at_tail(tail, self.min_repeat_chars, self.max_repeats) else None
