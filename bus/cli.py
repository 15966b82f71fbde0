"""The `voxkey` command.

    voxkey up [--config FILE] [--set section.key=value ...]
    voxkey replay PATH [--realtime] [--sink stdout|file:PATH|xdotool] [--trace PATH]

Both run every stage as its own process under supervisord (supervisord.conf). `replay`
feeds a recording in, waits until everything in it has been typed, stops the stages,
and prints exactly the text that was typed; logs stay in the run directory.
"""

import argparse
import json
import sys
import time

import msgpack
import zmq

from bus import models, sockets
from bus import config as configuration
from bus import replay as replaying
from bus.replay import prepare_run
from bus.supervise import Supervisor


class CliError(Exception):
    pass


def replay(args) -> int:
    config = configuration.load(args.config, args.set)
    if args.sink:
        config["stages"]["keys"]["sink"] = args.sink
    state = replaying.run(config, args.path, realtime=args.realtime, keep=args.keep)
    if args.trace:
        with open(args.trace, "w") as trace:
            for row in state.rows.values():
                trace.write(json.dumps(row) + "\n")
    sys.stdout.write(state.text)
    if state.text and sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


def up(args) -> int:
    config = configuration.load(args.config, args.set)
    run_dir = sockets.make_private_dir(sockets.run_dir(config))
    supervisor = Supervisor(run_dir, prepare_run(config, run_dir))
    supervisor.start()
    print(f"voxkey: listening; logs in {run_dir}; Ctrl-C stops", file=sys.stderr)
    try:
        while supervisor.alive():
            replaying.check_health(supervisor)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
    return 0


def set_mode(args) -> int:
    config = configuration.load(args.config, args.set)
    run_dir = sockets.run_dir(config)
    sockets.check_private_dir(run_dir)
    reply = control(config, "router", "mode", {"mode": args.mode})
    print(f"voxkey: {reply}", file=sys.stderr)
    return 0


def control(config: dict, stage: str, command: str, args: dict, timeout_s: float = 3.0) -> str:
    """Send one command to a running stage's control socket and return its answer."""
    context = zmq.Context.instance()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(sockets.control_endpoint(config, stage))
        socket.send(msgpack.packb({"command": command, "args": args}))
        if not socket.poll(int(timeout_s * 1000)):
            raise CliError(f"stage {stage} did not answer in {timeout_s:.0f} s: is voxkey running (voxkey up)?")
        reply = msgpack.unpackb(socket.recv(), raw=False)
    finally:
        socket.close()
    if not reply.get("ok"):
        raise CliError(f"{stage}: {reply.get('message')}")
    return reply.get("message", "")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="voxkey", description="A fully local, voice-first keyboard.")
    commands = root.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("--config", help="a TOML file laid over the defaults")
        sub.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")

    live = commands.add_parser("up", help="listen to the microphone and type")
    common(live)
    live.set_defaults(run=up)

    play = commands.add_parser("replay", help="type what a recording says")
    play.add_argument("path")
    play.add_argument("--realtime", action="store_true", help="feed audio at the speed it was spoken")
    play.add_argument("--sink", help="stdout (default), file:PATH or xdotool")
    play.add_argument("--trace", help="write one JSON line of timings per utterance here")
    play.add_argument("--keep", action="store_true", help="keep the run directory (sockets, logs)")
    common(play)
    play.set_defaults(run=replay)

    mode = commands.add_parser("mode", help="set the sticky mode of a running voxkey")
    mode.add_argument("mode", choices=["dictate", "clarify", "chat", "converse"])
    common(mode)
    mode.set_defaults(run=set_mode)

    models.add_cli(commands)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        sys.exit(args.run(args))
    except (CliError, replaying.ReplayError, configuration.ConfigError, models.ModelError) as error:
        print(f"voxkey: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
