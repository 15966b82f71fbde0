"""voxkey up: listen to the microphone and type, until stopped.

    voxkey up [--sink auto|wayland|wtype|xdotool|clipboard|uinput|hid|hid:PATH|stdout|file:PATH]
              [--remote HOST] [--config FILE] [--set section.key=value ...]

With --remote, the paired HOST runs `placement.stages` (started there with `voxkey
serve`), and this host the rest: the wiring follows from that (bus/placement.py).

Every stage runs as its own process under supervisord (supervisord.conf); logs stay in
the run directory. What happens is shown as it happens (LiveView) and told to a service
manager that started us (READY=1, STATUS=, STOPPING=1). A stage that fails before all
were ready, or supervisord gone, stops every stage (exit status 1); a later failure is
shown and the others go on. SIGINT, SIGTERM or SIGHUP stops every stage (exit status 0).
"""

import math
import shutil
import signal
import sys
import time

from bus import placement, sockets
from bus.frames import Transcript, Typed
from bus.peer import Peer
from bus.wiring import CLI, STAGES
from voxkey import fallback, remote, service, settings, status
from voxkey.running import CliError


def add_cli(commands):
    live = commands.add_parser("up", help="listen to the microphone and type")
    live.add_argument(
        "--sink",
        default="auto",
        help=(
            "auto (default: from the session), wayland, wtype, xdotool, clipboard, uinput, hid (a USB keyboard), "
            "stdout or file:PATH"
        ),
    )
    remote.add_argument(live)
    live.set_defaults(run=run)
    return live


def run(args) -> int:
    # Imported here, not above: `voxkey --help` and `voxkey listen` do without them.
    from bus import log as logging
    from voxkey.cues import Cues, cue_of
    from voxkey.supervise import Health

    config = settings.load(args.config, args.set)
    config["stages"]["keys"]["sink"] = args.sink
    remote.apply(config, args.remote)
    supervisor = start(config, placement.stages_here(config))
    health = Health(supervisor)
    user_text = bool(config["log"]["user_text"])
    watch = Peer(CLI, config, list(STAGES), [Transcript.TOPIC, Typed.TOPIC], logging.setup(CLI, user_text))
    cues = Cues() if config["cli"]["sound_cues"] else None
    view = LiveView(sys.stderr, desktop=bool(config["cli"]["notify"]), user_text=user_text)
    view.live.outages = status.Outages.of(config)  # the stages another host runs, if any
    ever_ready = False
    try:
        next_check = 0.0
        while True:
            # Asleep until a stage says something or the next look at supervisord.
            frame = watch.receive(max(0, math.ceil((next_check - time.monotonic()) * 1000)))
            if frame is not None:
                was_listening = view.live.listening
                events = view.live.on_frame(frame)
                if cues is not None:
                    cues.play(cue_of(was_listening, view.live.listening))
                view.show(events)
                if events:
                    service.tell_service_manager(f"STATUS={events[-1].message}")
                if view.live.loading.all_ready and not ever_ready:
                    ever_ready = True
                    service.tell_service_manager("READY=1")
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1.0
                view.show(view.live.check_links(time.monotonic()))
                if view.live.outages.out and config["placement"]["fallback"]:
                    watch.close()
                    config, standing_in = fallback.fall_back(config, supervisor.run_dir, supervisor)
                    watch = Peer(CLI, config, list(STAGES), [Transcript.TOPIC, Typed.TOPIC], watch.log)
                    view.live.outages = status.Outages()  # every stage is here now
                    message = f"typing with this host's {', '.join(standing_in)} until voxkey up starts again"
                    view.show([status.Event(message, desktop=True)])
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
        stop_quietly(supervisor, view, watch)
    return 0


def start(config: dict, stages: tuple[str, ...]):
    """supervisord started with `stages`, in the run directory, once sure no voxkey runs there."""
    from voxkey.replay import prepare_run
    from voxkey.supervise import Supervisor

    run_dir = sockets.make_private_dir(sockets.run_dir(config))
    running = Supervisor(run_dir, run_dir / "run.toml").states()
    if running:  # checked before anything of the running one is touched
        raise CliError(
            f"voxkey is already running in {run_dir} ({len(running)} stages): stop it first "
            "(Ctrl-C in its terminal, or systemctl --user stop voxkey), or give this one another bus.run_dir"
        )
    for memory in run_dir.glob("*.state.json"):  # a new session starts a new document
        memory.unlink()
    supervisor = Supervisor(run_dir, prepare_run(config, run_dir), stages)
    # A service manager stops us with SIGTERM, a closed terminal with SIGHUP, Ctrl-C or
    # `kill -INT` with SIGINT -- which Python leaves ignored when started ignoring it (in
    # the background of a script): the stages go with us in every case.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    supervisor.start()
    print(f"voxkey: starting {', '.join(stages)}; logs in {run_dir}; Ctrl-C stops", file=sys.stderr)
    return supervisor


def stop_quietly(supervisor, *closing) -> None:
    """Stop the stages, not to be cut short by a second Ctrl-C."""
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, signal.SIG_IGN)
    service.tell_service_manager("STOPPING=1")
    for thing in closing:
        thing.close()
    supervisor.stop()


class LiveView:
    """`voxkey up`'s output: each event on its own line (what was heard and typed, mode
    and listening changes, errors), and in a terminal a status line kept under them.
    Written elsewhere (the journal, under the service), it is written down: what the
    user said is then told by its length only, unless `user_text` (log.user_text)."""

    def __init__(self, stream, desktop: bool, user_text: bool = False):
        self.stream = stream
        self.desktop = desktop
        self.tty = stream.isatty()
        self.live = status.Live(quote=self.tty or user_text)

    def show(self, events: list) -> None:
        for event in events:
            self._write(f"voxkey: {event.message}\n")
            if event.desktop and self.desktop:
                urgent = event.urgent or event.message.startswith(("typing failed", "stage"))
                status.notify(event.message, urgent=urgent)
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
