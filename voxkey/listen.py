"""voxkey listen: turn a running voxkey's listening on or off.

    voxkey listen on|off|toggle|hold|release [--config FILE] [--set section.key=value ...]

`hold` listens until `release` (push-to-talk). Listening begins from the moment the
command was given (`voxkey.INVOKED_NS`), not from when capture hears of it: the first
word of a key binding's `voxkey listen hold` is kept. Prints capture's answer.
"""

from stages.capture import LISTEN_COMMANDS
from voxkey import INVOKED_NS
from voxkey.running import tell


def add_cli(commands):
    hearing = commands.add_parser("listen", help="turn listening on or off (hold/release: push-to-talk)")
    hearing.add_argument("how", choices=LISTEN_COMMANDS)
    hearing.set_defaults(run=run)
    return hearing


def run(args) -> int:
    return tell(args, "capture", "listen", {"how": args.how, "since_ns": INVOKED_NS})
