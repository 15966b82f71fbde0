"""structlog JSON lines on stderr, each carrying the stage name (and utterance id where bound).

What the user said stays out of them unless `log.user_text` asks for it: a log is
written down (the run directory, the journal) and outlives the screen. The words travel
in a few fields only, USER_TEXT_FIELDS; a call that logs words puts them there, and
without the setting each is replaced by its length.
"""

import logging
import sys

import structlog

# The fields that carry what the user said, or what was made of it (a transcript,
# Whisper's raw text, words a partial added, a model's answer or thinking, a tool call).
USER_TEXT_FIELDS = frozenset({"text", "raw", "new"})


def setup(stage: str, user_text: bool = False) -> structlog.BoundLogger:
    """The stage's logger; `user_text`: the user's words are written as they are."""
    structlog.configure(
        processors=[
            *([] if user_text else [withhold_user_text]),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(stage=stage)


def withhold_user_text(_logger, _method: str, event: dict) -> dict:
    """A structlog processor: each user-text field of the event is replaced by how long
    it was ("<23 chars>"), which still tells a silent transcript from a long one."""
    for name in USER_TEXT_FIELDS & event.keys():
        value = event[name]
        event[name] = f"<{len(value)} chars>" if isinstance(value, str) else "<withheld>"
    return event
