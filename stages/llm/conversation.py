"""What chat and converse remember between utterances: per mode, the user's turns and the
model's answers (never its thinking), so a follow-up is answered in context.

Pure: the model stages keep one `Conversation` per mode in their state file, lay its
turns into the prompt, and record each answer. Guarantees:
- A request answered again (after a crash of its stage) gets the very prompt it had the
  first time: it holds only the turns before its own utterance, so, seeded by the
  utterance, it gets the same answer, and keys types it once.
- A prompt holds a window of the latest turns that fits the conversation's budget. The
  window stays where it began while it fits, so each prompt extends the one before and
  llama.cpp evaluates only the new tokens; when it no longer fits it moves at once to
  the latest turns that fit half the budget. Moving a turn at a time would change the
  prompt's beginning, and re-evaluate all of it, on every request once the budget is full.
- A request of another conversation (the router's number for it changed on "new
  conversation") starts afresh.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

# Far more than any context holds: only bounds the state file.
MAX_TURNS = 64


@dataclass
class Turn:
    """A question and the answer the model typed for it (never its thinking)."""

    utt: str
    user: str
    answer: str
    # The utterance whose turn began the window the answer was given with (its own
    # when the window was empty): where the next prompt's window starts.
    since: str = ""


@dataclass
class Conversation:
    number: int = 0  # the router's count of conversations started
    turns: list[Turn] = field(default_factory=list)  # oldest first

    def before(self, utt: str) -> list[Turn]:
        """The turns a request's prompt may hold: those before its own utterance."""
        for index, turn in enumerate(self.turns):
            if turn.utt == utt:
                return self.turns[:index]
        return list(self.turns)

    def remember(self, utt: str, user: str, answer: str, window: list[Turn] = ()) -> None:
        since = window[0].utt if window else utt
        self.turns = [*self.before(utt), Turn(utt, user, answer, since)][-MAX_TURNS:]

    def for_request(self, number: int) -> "Conversation":
        """This conversation, or a fresh one if the request belongs to another."""
        return self if number == self.number else Conversation(number)


@dataclass
class Conversations:
    """A model stage's state file: the conversation of each mode it serves."""

    conversations: dict[str, Conversation] = field(default_factory=dict)


def as_messages(turns: list[Turn], asked: Callable[[str], dict]) -> list[dict]:
    """The turns as chat messages: each question as `asked` lays it out, then the answer."""
    return [message for turn in turns for message in (asked(turn.user), {"role": "assistant", "content": turn.answer})]


def window(
    turns: list[Turn], fits: Callable[[list[Turn]], bool], fits_half: Callable[[list[Turn]], bool]
) -> list[Turn]:
    """The turns a prompt holds: from where the last answer's window began while that
    `fits`, else the latest turns that `fits_half`. A function of the turns alone, so a
    request answered again gets the window it had."""
    if not turns:
        return []
    since = turns[-1].since
    start = next((index for index, turn in enumerate(turns) if turn.utt == since), 0)
    return turns[start:] if fits(turns[start:]) else latest_that_fit(turns, fits_half)


def latest_that_fit(turns: list[Turn], fits: Callable[[list[Turn]], bool]) -> list[dict]:
    """The longest run of the latest turns that `fits`, oldest dropped first."""
    for start in range(len(turns) + 1):
        if fits(turns[start:]):
            return turns[start:]
    return []
