"""The `voxkey` command.

    voxkey up [--sink auto|wtype|xdotool|clipboard|uinput|hid|hid:PATH|stdout|file:PATH] [--config FILE] [--set section.key=value ...]
    voxkey replay PATH [--realtime] [--sink ...] [--trace PATH]
    voxkey listen on|off|toggle|hold|release
    voxkey mode dictate|clarify|chat|converse
    voxkey conversation new
    voxkey status
    voxkey swap STAGE [--set key=value ...]
    voxkey models list|fetch
    voxkey doctor [--no-mic] [--verify]
    voxkey service install|uninstall [--config FILE] [--no-start]
    voxkey gadget setup|teardown|status [--udc NAME]

`up` and `replay` run every stage as its own process under supervisord (supervisord.conf). `replay`
feeds a recording in, waits until everything in it has been typed, stops the stages,
and prints exactly the text that was typed; logs stay in the run directory.
"""

import time

# When the command was given, before the imports below take their time: `listen on`
# keeps what was said from this moment (a key binding's first word).
INVOKED_NS = time.monotonic_ns()

import argparse
import importlib.metadata
import json
import shutil
import signal
import sys
import xmlrpc.client
from pathlib import Path

import msgpack
import zmq

from bus import config as configuration
from bus import log as logging
from bus import sockets
from bus.frames import Transcript, Typed
from bus.peer import Peer
from voxkey import doctor, gadget, models, service, settings, status
from voxkey import replay as replaying
from voxkey.replay import prepare_run
from voxkey.supervise import Health, Supervisor, last_error


class CliError(Exception):
    pass


def replay(args) -> int:
    config = settings.load(args.config, args.set)
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
    config = settings.load(args.config, args.set)
    config["stages"]["keys"]["sink"] = args.sink
    run_dir = sockets.make_private_dir(sockets.run_dir(config))
    running = Supervisor(run_dir, run_dir / "run.toml").states()
    if running:  # checked before anything of the running one is touched
        raise CliError(
            f"voxkey is already running in {run_dir} ({len(running)} stages): stop it first "
            "(Ctrl-C in its terminal, or systemctl --user stop voxkey), or give this one another bus.run_dir"
        )
    for memory in run_dir.glob("*.state.json"):  # a new session starts a new document
        memory.unlink()
    supervisor = Supervisor(run_dir, prepare_run(config, run_dir))
    health = Health(supervisor)
    # A service manager stops us with SIGTERM, a closed terminal with SIGHUP, Ctrl-C or
    # `kill -INT` with SIGINT -- which Python leaves ignored when started ignoring it (in
    # the background of a script): the stages go with us in every case.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    supervisor.start()
    print(f"voxkey: starting; logs in {run_dir}; Ctrl-C stops", file=sys.stderr)
    watch = Peer("cli", config, list(configuration.STAGES), [Transcript.TOPIC, Typed.TOPIC], logging.setup("cli"))
    view = LiveView(sys.stderr, desktop=bool(config["cli"]["notify"]))
    ever_ready = False
    try:
        next_check = 0.0
        while True:
            frame = watch.receive(250)
            if frame is not None:
                events = view.live.on_frame(frame)
                view.show(events)
                if events:
                    service.tell_service_manager(f"STATUS={events[-1].message}")
                if view.live.loading.all_ready and not ever_ready:
                    ever_ready = True
                    service.tell_service_manager("READY=1")
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1.0
                for problem in health.problems(time.monotonic()):
                    # Before the first "ready" nothing works yet: fail, so a service
                    # manager sees it. Later the others go on, and the user is told.
                    if not ever_ready or not supervisor.alive():
                        if view.desktop:
                            status.notify(problem, urgent=True)
                        raise CliError(problem + "; every stage stopped")
                    view.show([status.Event(problem, desktop=True)])
    except KeyboardInterrupt:
        pass
    finally:
        for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # stopping is not to be cut short
            signal.signal(stop, signal.SIG_IGN)
        service.tell_service_manager("STOPPING=1")
        view.close()
        watch.close()
        supervisor.stop()
    return 0


class LiveView:
    """`voxkey up`'s output: each event on its own line (what was heard and typed, mode
    and listening changes, errors), and in a terminal a status line kept under them."""

    def __init__(self, stream, desktop: bool):
        self.stream = stream
        self.desktop = desktop
        self.live = status.Live()
        self.tty = stream.isatty()

    def show(self, events: list) -> None:
        for event in events:
            self._write(f"voxkey: {event.message}\n")
            if event.desktop and self.desktop:
                status.notify(event.message, urgent=event.message.startswith(("typing failed", "stage")))
        if self.tty:
            self._write(status.clip(self.live.line(), shutil.get_terminal_size().columns - 1))

    def _write(self, text: str) -> None:
        if self.tty:
            text = "\r\x1b[K" + text  # over the status line
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._write("")


def swap_stage(run_dir: Path, stage: str, settings: list[str]) -> int:
    """Change one stage's settings in a running pipeline's config and restart only that
    stage; the others keep running, and vad re-sends whatever the restart lost. A stage
    that cannot start with the new settings, or is not ready within the stall timeout,
    is started again with the previous ones: a bad swap never leaves the pipeline
    without the stage. Returns the new process id."""
    if stage not in configuration.STAGES:
        raise CliError(f"unknown stage {stage!r}: choose one of {', '.join(configuration.STAGES)}")
    run_config = running_dir(run_dir) / "run.toml"
    previous = run_config.read_text()
    config = settings.load(run_config, [f"stages.{stage}.{item}" for item in settings])
    supervisor = Supervisor(run_dir, run_config)
    write_atomically(run_config, configuration.dumps(config))  # supervisord starts the stage with this file
    try:
        pid = restart_stage(supervisor, stage)
        wait_until_ready(config, supervisor, stage, pid, float(config["cli"]["stall_timeout_s"]))
        return pid
    except CliError as failure:
        write_atomically(run_config, previous)
        pid = restart_stage(supervisor, stage)
        raise CliError(f"{failure}; {stage} is back on its previous settings (pid {pid})") from None


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".swap")
    temporary.write_text(text)
    temporary.replace(path)


def restart_stage(supervisor: Supervisor, stage: str) -> int:
    rpc = supervisor.rpc.supervisor
    try:
        if supervisor.states().get(stage, {}).get("statename") in ("RUNNING", "STARTING", "BACKOFF"):
            rpc.stopProcess(stage, True)
        rpc.startProcess(stage, True)
        return int(rpc.getProcessInfo(stage)["pid"])
    except xmlrpc.client.Fault:  # it died within its first second
        raise CliError(f"{stage} cannot start: {last_error(supervisor.run_dir / f'{stage}.log')}") from None
    except OSError as error:
        raise CliError(f"supervisord in {supervisor.run_dir} refused to restart {stage}: {error}") from None


def wait_until_ready(config: dict, supervisor: Supervisor, stage: str, pid: int, timeout_s: float) -> None:
    """Until the stage process `pid` says it is ready; CliError with its last error line
    if it exits or is replaced first, or once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = supervisor.states().get(stage, {})
        if info.get("pid") != pid or info.get("statename") != "RUNNING":
            raise CliError(f"{stage} cannot start: {last_error(supervisor.run_dir / f'{stage}.log')}")
        try:
            answer = control(config, stage, "status", {}, timeout_s=1.0)
        except CliError:
            answer = {}  # not answering yet: still loading its imports
        if answer.get("ready") and answer.get("pid") == pid:
            return
        time.sleep(0.2)
    raise CliError(
        f"{stage} was not ready {timeout_s:.0f} s after it started; see {supervisor.run_dir / f'{stage}.log'}"
    )


def swap(args) -> int:
    config = settings.load(args.config)
    run_dir = Path(args.run_dir) if args.run_dir else sockets.run_dir(config)
    pid = swap_stage(run_dir, args.stage, args.set)
    print(f"voxkey: {args.stage} restarted with {' '.join(args.set) or 'its settings'} (pid {pid})", file=sys.stderr)
    return 0


def running_dir(run_dir: Path) -> Path:
    """The run directory of a running voxkey, checked to be private."""
    if not (run_dir / "run.toml").is_file():
        raise CliError(f"no running voxkey in {run_dir}: start one with voxkey up")
    sockets.check_private_dir(run_dir)
    return run_dir


def tell_router(args, command: str, command_args: dict) -> int:
    config = settings.load(args.config, args.set)
    running_dir(sockets.run_dir(config))
    reply = control(config, "router", command, command_args)
    print(f"voxkey: {reply}", file=sys.stderr)
    return 0


def set_mode(args) -> int:
    return tell_router(args, "mode", {"mode": args.mode})


def new_conversation(args) -> int:
    return tell_router(args, "new-conversation", {})


def set_listening(args) -> int:
    config = settings.load(args.config, args.set)
    running_dir(sockets.run_dir(config))
    reply = control(config, "capture", "listen", {"how": args.how, "since_ns": INVOKED_NS})
    print(f"voxkey: {reply}", file=sys.stderr)
    return 0


def show_status(args) -> int:
    config = settings.load(args.config, args.set)
    run_dir = running_dir(sockets.run_dir(config))
    answers = {}
    for stage in configuration.STAGES:
        try:
            answers[stage] = control(config, stage, "status", {}, timeout_s=1.0)
        except CliError as error:
            answers[stage] = {"error": str(error).removeprefix(f"{stage}: ")}
    processes = Supervisor(run_dir, run_dir / "run.toml").states()
    print(status.render(answers, processes))
    return 0 if all("error" not in answer for answer in answers.values()) else 1


def control(config: dict, stage: str, command: str, args: dict, timeout_s: float = 3.0):
    """Send one command to a running stage's control socket and return its answer."""
    endpoint = sockets.control_endpoint(config, stage)
    if not Path(endpoint.removeprefix("ipc://")).exists():  # say so now rather than after the timeout
        raise CliError(f"stage {stage} is not running (no {endpoint}): start voxkey with voxkey up")
    context = zmq.Context.instance()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(endpoint)
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
    live.add_argument(
        "--sink",
        default="auto",
        help="auto (default: from the session), wtype, xdotool, clipboard, uinput, hid (a USB keyboard), stdout or file:PATH",
    )
    common(live)
    live.set_defaults(run=up)

    play = commands.add_parser("replay", help="type what a recording says")
    play.add_argument("path")
    play.add_argument("--realtime", action="store_true", help="feed audio at the speed it was spoken")
    play.add_argument(
        "--sink", help="stdout (default), file:PATH, auto, wtype, xdotool, clipboard, uinput, hid or hid:PATH"
    )
    play.add_argument("--trace", help="write one JSON line of timings per utterance here")
    play.add_argument("--keep", action="store_true", help="keep the run directory (sockets, logs)")
    common(play)
    play.set_defaults(run=replay)

    change = commands.add_parser("swap", help="change one stage's settings and restart only it")
    change.add_argument("stage", help="capture, vad, asr, router, instruct, thinking or keys")
    change.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of that stage")
    change.add_argument("--run-dir", help="the running pipeline's directory (default: voxkey up's)")
    change.add_argument("--config", help="a TOML file laid over the defaults (to find the run directory)")
    change.set_defaults(run=swap)

    hearing = commands.add_parser("listen", help="turn listening on or off (hold/release: push-to-talk)")
    hearing.add_argument("how", choices=["on", "off", "toggle", "hold", "release"])
    common(hearing)
    hearing.set_defaults(run=set_listening)

    report = commands.add_parser(
        "status", help="what a running voxkey is doing: listening, mode, stages, last utterance"
    )
    common(report)
    report.set_defaults(run=show_status)

    mode = commands.add_parser("mode", help="set the sticky mode of a running voxkey")
    mode.add_argument("mode", choices=["dictate", "clarify", "chat", "converse"])
    common(mode)
    mode.set_defaults(run=set_mode)

    talk = commands.add_parser(
        "conversation", help='start chat and converse afresh (as saying "new conversation" does)'
    )
    talk.add_argument("action", choices=["new"])
    common(talk)
    talk.set_defaults(run=new_conversation)

    models.add_cli(commands)
    doctor.add_cli(commands)
    service.add_cli(commands)
    gadget.add_cli(commands)
    # Commands other packages add (`voxkey bench`), found through their entry points,
    # so the runtime does not depend on them.
    for command in importlib.metadata.entry_points(group="voxkey.commands"):
        command.load()(commands)
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
