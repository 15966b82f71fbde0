"""voxkey conversation: start chat and converse afresh, as saying "new conversation" does.

    voxkey conversation new [--config FILE] [--set section.key=value ...]

Prints the router's answer.
"""

from voxkey.running import tell


def add_cli(commands):
    talk = commands.add_parser(
        "conversation", help='start chat and converse afresh (as saying "new conversation" does)'
    )
    talk.add_argument("action", choices=["new"])
    talk.set_defaults(run=run)
    return talk


def run(args) -> int:
    return tell(args, "router", "new-conversation", {})
