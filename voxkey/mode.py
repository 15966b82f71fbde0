"""voxkey mode: set the sticky mode of a running voxkey.

    voxkey mode dictate|clarify|chat|converse [--config FILE] [--set section.key=value ...]

The mode applies to what is said after the command was given: an utterance already
spoken, still waiting for its pause to end or to be recognised, keeps the mode it was
said in. Prints the router's answer.
"""

from stages.router.modewords import MODES
from voxkey import INVOKED_NS
from voxkey.running import tell


def add_cli(commands):
    mode = commands.add_parser("mode", help="set the sticky mode of a running voxkey")
    mode.add_argument("mode", choices=MODES)
    mode.set_defaults(run=run)
    return mode


def run(args) -> int:
    return tell(args, "router", "mode", {"mode": args.mode, "since_ns": INVOKED_NS})
