"""When the host that runs some stages goes unheard: this host's own stand-ins for them
(`placement.fallback`), for the rest of the session.

The stages another host ran are started here, on this host's private sockets; the
stages here keep their endpoints (the microphone's audio is never interrupted), and
those that listen to one of the stand-ins (vad, router) are restarted to listen to it
here. What was on its way to the other host and not acknowledged is sent again to the
stand-ins, as to any consumer that comes back with another pid (bus/delivery.py): vad
restores the speech it holds, capture keeps the audio vad has not acknowledged.
"""

import copy
from pathlib import Path

from bus import config as configuration
from bus import placement, sockets, wiring


def local_config(config: dict) -> dict:
    """`config` with every stage on this host: the stages here keep the endpoints they
    have now (set by hand), the others take this host's defaults. Pure."""
    keys = placement.keys_of(config)
    here = placement.stages_here(config)
    alone = copy.deepcopy(config)
    for stage in here:
        alone["stages"][stage]["endpoint"] = sockets.endpoint(config, stage, keys)
    alone["placement"]["host"] = ""
    return alone


def to_restart(config: dict) -> tuple[str, ...]:
    """The stages here that listen to a stage another host runs: they must listen here."""
    here = placement.stages_here(config)
    return tuple(stage for stage in here if any(source not in here for source in wiring.listens_to(stage)))


def fall_back(config: dict, run_dir: Path, supervisor) -> tuple[dict, tuple[str, ...]]:
    """Start the other host's stages here and restart those that listen to them, with
    run.toml rewritten so (supervisord starts every stage with it). Returns the new
    configuration and the stages started here."""
    from voxkey.swap import write_atomically

    alone = local_config(config)
    standing_in = tuple(stage for stage in wiring.STAGES if stage not in placement.stages_here(config))
    restart = to_restart(config)
    write_atomically(run_dir / "run.toml", configuration.dumps(alone))
    rpc = supervisor.rpc.supervisor
    for stage in restart:
        rpc.stopProcess(stage, True)
    supervisor.stages = wiring.STAGES
    for stage in (*standing_in, *restart):
        rpc.startProcess(stage, False)
    return alone, standing_in
