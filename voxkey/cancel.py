"""voxkey cancel: stop what a running voxkey's models are doing, at once.

    voxkey cancel [--config FILE] [--set section.key=value ...]

For a key binding: like saying "cancel", but heard at once even while dictation waits
behind a model's answer. Every request in progress (a chat answer, converse's thinking
and tool turns, a clarify rewrite) stops before its next token and nothing more of it
is typed; the next utterance is taken at once. Prints the router's answer.
"""

from voxkey import INVOKED_NS
from voxkey.running import tell


def add_cli(commands):
    cancel = commands.add_parser("cancel", help="stop the models' answers in progress")
    cancel.set_defaults(run=run)
    return cancel


def run(args) -> int:
    return tell(args, "router", "cancel", {"since_ns": INVOKED_NS})
