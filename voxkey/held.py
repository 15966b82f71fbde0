"""voxkey held: what a running voxkey keeps instead of typing it late.

    voxkey held [list|type|copy|drop] [--show] [--config FILE] [--set section.key=value ...]

An utterance whose typing would begin more than `stages.keys.max_age_s` after it was
said is held by keys, not typed: the window it was meant for may not have the focus
any more. `list` (the default) says how many are held and how long ago each was said,
their text only with --show; `type` types them now into the focused window (from a key
binding, or `sleep 3; voxkey held type` and focus the window meanwhile); `copy` puts
them on the clipboard, to paste where they belong; `drop` forgets them. Held text
survives a restart of keys; a new `voxkey up` starts without it.
"""

import sys

from bus import asking, sockets
from voxkey import settings
from voxkey.running import running_dir

ACTIONS = ("list", "type", "copy", "drop")
# How long keys may take to answer, beyond the usual few seconds: typing what is held
# takes as long as typing it would have (wtype types ~85 characters a second, and a
# model's answer may be long); a clipboard tool may take its own timeout (10 s).
TIMEOUT_S = {"type": 120.0, "copy": 15.0}


def add_cli(commands):
    held = commands.add_parser("held", help="utterances kept instead of typed late: list, type, copy or drop them")
    held.add_argument("action", nargs="?", default="list", choices=ACTIONS)
    held.add_argument("--show", action="store_true", help="list: show the held text too")
    held.set_defaults(run=run)
    return held


def run(args) -> int:
    config = settings.load(args.config, args.set)
    running_dir(sockets.run_dir(config))
    waits = {"timeout_s": TIMEOUT_S[args.action]} if args.action in TIMEOUT_S else {}
    reply = asking.ask(config, "keys", "held", {"how": args.action, "show": args.show}, **waits)
    print(describe(args.action, reply["held"], reply["done"]), file=sys.stderr)
    return 0


def describe(action: str, held: list[dict], done: str) -> str:
    """What `voxkey held` prints: what was held, and what was done with it."""
    if not held:
        return "voxkey: nothing is held"
    lines = [f"voxkey: {len(held)} utterance{'s' if len(held) != 1 else ''} held" + (f"; {done}" if done else "")]
    for item in held:
        still = "" if item["complete"] else ", still being answered"
        lines.append(f"  said {item['said_s_ago']:.0f} s ago, {item['characters']} characters{still}")
        if "text" in item:
            lines.append(f"    {item['text']!r}")
    if action == "list":
        lines.append("voxkey held type (into the focused window), copy (to the clipboard) or drop")
    return "\n".join(lines)
