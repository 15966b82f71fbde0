"""voxkey serve: run some stages here for a paired host that has the keyboard.

    voxkey serve [STAGES...] [--for HOST] [--config FILE] [--set section.key=value ...]

On the bigger machine: `voxkey serve` (the stages of `placement.stages`: asr,
instruct and thinking), while the host with the microphone and the keyboard runs
`voxkey up --remote THIS-HOST`; STAGES given here must be the same there
(placement.stages). Both derive the same wiring (bus/placement.py); each runs its own
stages under its own supervisord. HOST: the keyboard's host, by the name it was paired
under (default: the one host paired with this one). It says when its stages have
loaded, when the keyboard's host is heard (ready) and when it goes unheard. Until
stopped; SIGINT, SIGTERM or SIGHUP stops every stage here (exit status 0).
"""

import sys
import time

from bus import placement, wiring
from bus.config import ConfigError
from bus.frames import Heartbeat
from bus.peer import Peer
from bus.wiring import CLI
from voxkey import settings, status
from voxkey.up import start, stop_quietly


def add_cli(commands):
    serve = commands.add_parser("serve", help="run stages here for a paired host that has the keyboard")
    serve.add_argument("stages", nargs="*", help="the stages to run here (default: placement.stages)")
    serve.add_argument("--for", dest="keyboard", metavar="HOST", default="", help="the host with the keyboard")
    serve.set_defaults(run=run)
    return serve


def run(args) -> int:
    from bus import log as logging
    from voxkey.supervise import Health

    config = settings.load(args.config, args.set)
    keys = placement.keys_of(config)
    if keys is None:
        raise ConfigError("voxkey serve needs this host paired with the keyboard's: run `voxkey pair`")
    config["placement"].update(host=keys.here, keyboard=args.keyboard or config["placement"]["keyboard"])
    if args.stages:
        config["placement"]["stages"] = args.stages
    stages = placement.stages_here(config)
    keyboard = placement.where(config, keys)["keys"]
    # The keyboard's stages that ours listen to: heard, they say the link is up.
    heard = tuple(s for s in wiring.STAGES if s not in stages and any(s in wiring.listens_to(o) for o in stages))
    supervisor = start(config, stages)
    health = Health(supervisor)
    watch = Peer(CLI, config, [*stages, *heard], [], logging.setup(CLI, False))
    ask = f"is `voxkey up --remote {keys.here}` running there, and the network up?"
    outages = status.Outages.of(config, heard, ask=ask, never_heard_is_out=False)
    progress = Progress(stages, f"{keyboard} ({keys.host(keyboard).address})", outages)
    next_check = 0.0
    try:
        while True:
            frame = watch.receive(1000)
            if frame is not None and isinstance(frame.body, Heartbeat):
                say(progress.on_heartbeat(frame.src, frame.body, time.monotonic()))
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1.0
                say([event.message for event in progress.outages.check(time.monotonic())])
                say(health.problems(time.monotonic()))
                if not supervisor.alive():
                    return 1
    except KeyboardInterrupt:
        pass
    finally:
        stop_quietly(supervisor, watch)
    return 0


def say(lines: list[str]) -> None:
    for line in lines:
        print(f"voxkey: {line}", file=sys.stderr, flush=True)


class Progress:
    """What `voxkey serve` tells as heartbeats come: once its stages have loaded, and
    once they are ready (they hear the keyboard's host: its `voxkey up` runs)."""

    def __init__(self, stages: tuple[str, ...], keyboard: str, outages: status.Outages):
        self.stages, self.keyboard, self.outages = stages, keyboard, outages
        self.beats: dict[str, Heartbeat] = {}
        self.loaded = self.ready = False

    def on_heartbeat(self, source: str, beat: Heartbeat, now: float) -> list[str]:
        self.outages.heard(source, now)
        if source not in self.stages:
            return []
        self.beats[source] = beat
        said = []
        if not self.loaded and self._all(lambda beat: beat.state != "starting"):
            self.loaded = True
            said.append(f"serving {', '.join(self.stages)} for {self.keyboard}: loaded, waiting for it")
        if not self.ready and self._all(lambda beat: beat.ready):
            self.ready = True
            said.append(f"serving {', '.join(self.stages)} for {self.keyboard}: ready")
        return said

    def _all(self, holds) -> bool:
        return len(self.beats) == len(self.stages) and all(holds(beat) for beat in self.beats.values())
