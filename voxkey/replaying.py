"""voxkey replay: type what a recording says (voxkey/replay.py does the replaying).

    voxkey replay PATH [--realtime] [--sink ...] [--trace PATH] [--keep] [--remote HOST]
                  [--config FILE] [--set section.key=value ...]

Every stage runs as its own process under supervisord, as under `voxkey up`; the
recording is fed in once all are ready. Once everything in it has been typed the stages
stop, and exactly the text that was typed is printed on stdout (with a newline after it
only in a terminal). The run directory (sockets, logs) is removed unless --keep.
"""

import json
import sys

from voxkey import remote
from voxkey.running import CliError


def add_cli(commands):
    play = commands.add_parser("replay", help="type what a recording says")
    play.add_argument("path")
    play.add_argument("--realtime", action="store_true", help="feed audio at the speed it was spoken")
    play.add_argument(
        "--sink", help="stdout (default), file:PATH, auto, wtype, xdotool, clipboard, uinput, hid or hid:PATH"
    )
    play.add_argument("--trace", help="write one JSON line of timings per utterance here")
    play.add_argument("--keep", action="store_true", help="keep the run directory (sockets, logs)")
    remote.add_argument(play)
    play.set_defaults(run=run)
    return play


def run(args) -> int:
    # Imported here, not above: `voxkey --help` and `voxkey listen` do without them.
    from voxkey import replay, settings

    config = settings.load(args.config, args.set)
    if args.sink:
        config["stages"]["keys"]["sink"] = args.sink
    remote.apply(config, args.remote)
    try:
        state = replay.run(config, args.path, realtime=args.realtime, keep=args.keep)
    except replay.ReplayError as error:
        raise CliError(str(error)) from None
    if args.trace:
        with open(args.trace, "w") as trace:
            for row in state.rows.values():
                trace.write(json.dumps(row) + "\n")
    sys.stdout.write(state.text)
    if state.text and sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0
