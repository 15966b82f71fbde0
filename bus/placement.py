"""Which stage runs on which host, and what follows from it: each stage's endpoint, the
key its publisher must present, and the hosts its publisher lets in.

The description is `[placement]`: `host` runs `stages`, the keyboard's host (the one
with the microphone and the keyboard, which runs `voxkey up`) runs the rest, each host
by the name it was paired under (`voxkey pair`). `voxkey up --remote HOST` and
`voxkey serve STAGES...` set it, so both hosts derive the same wiring from it:

- a stage that a stage on another host listens to publishes on tcp://ADDRESS:PORT,
  ADDRESS its host's as paired, PORT `bus.port` plus its place in the pipeline; every
  other stage keeps its private ipc:// socket (an `endpoint` set by hand wins);
- a subscriber accepts a publisher only with the key of the host that runs it;
- a publisher lets in only this host and the hosts of the stages that listen to it:
  capture's audio reaches the host of vad, and no other.
"""

from pathlib import Path

from bus import curve, wiring
from bus.config import ConfigError, config_home

# The microphone and the keyboard are where the user is.
KEYBOARD_STAGES = ("capture", "keys")


def spans_hosts(config: dict) -> bool:
    return bool(config.get("placement", {}).get("host"))


def default_keys_dir() -> Path:
    return config_home() / "voxkey" / "keys"


def keys_dir(config: dict) -> str:
    """`bus.curve_dir`, else the directory `voxkey pair` made, if it did."""
    given = str(config["bus"].get("curve_dir") or "")
    return given or (str(default_keys_dir()) if (default_keys_dir() / curve.HOSTS).exists() else "")


def keys_of(config: dict) -> curve.Keys | None:
    """The key directory's keys, or None where there is none (a pipeline on one host)."""
    directory = keys_dir(config)
    if not directory:
        if spans_hosts(config):
            raise ConfigError(
                "stages on another host need CURVE keys: run `voxkey pair` on both hosts and follow what it prints"
            )
        return None
    return curve.load(directory)


def where(config: dict, keys: curve.Keys | None) -> dict[str, str]:
    """stage (and the command) -> the name of the host that runs it; every one this
    host's ("" without keys) for a pipeline on one host."""
    here = keys.here if keys is not None else ""
    section = config.get("placement", {})
    brain = str(section.get("host") or "")
    if not brain:
        return dict.fromkeys((*wiring.STAGES, wiring.CLI), here)
    for stage in section["stages"]:
        if stage not in wiring.STAGES or stage in KEYBOARD_STAGES:
            raise ConfigError(
                f"placement.stages: {stage!r} cannot run on another host "
                f"(it may hold: {', '.join(s for s in wiring.STAGES if s not in KEYBOARD_STAGES)})"
            )
    keyboard = here if brain != here else str(section.get("keyboard") or only_other(keys))
    for name in (brain, keyboard):
        keys.host(name)  # paired, or a one-line error saying how
    hosts = {stage: brain if stage in section["stages"] else keyboard for stage in wiring.STAGES}
    return hosts | {wiring.CLI: here}


def stages_here(config: dict) -> tuple[str, ...]:
    """The stages this host runs: every one, unless another host runs some."""
    keys = keys_of(config)
    hosts = where(config, keys)  # a host not paired is a one-line error here
    return tuple(stage for stage in wiring.STAGES if keys is None or hosts[stage] == keys.here)


def only_other(keys: curve.Keys) -> str:
    others = sorted(name for name in keys.hosts if name != keys.here)
    if len(others) != 1:
        raise ConfigError(
            f"which host has the keyboard? {len(others)} hosts are paired with this one "
            f"({', '.join(others) or 'none'}): give it with `voxkey serve --for HOST` (placement.keyboard)"
        )
    return others[0]


def remote_host(config: dict, stage: str) -> str:
    """The name of the host that runs `stage` when that is not this one, else ""."""
    if not spans_hosts(config):
        return ""
    keys = keys_of(config)
    host = where(config, keys)[stage]
    return "" if host == keys.here else host


def listeners(stage: str) -> tuple[str, ...]:
    """The stages that subscribe to `stage` (bus/wiring.py)."""
    return tuple(other for other in wiring.STAGES if stage in wiring.listens_to(other))


def crosses_hosts(hosts: dict[str, str], stage: str) -> bool:
    return any(hosts[other] != hosts[stage] for other in listeners(stage))


def audience(hosts: dict[str, str], stage: str) -> set[str]:
    """The hosts a publisher of `stage` lets in: its own, and those of its listeners. A
    participant outside the pipeline (a bench's, a test's) is of this host, as the command."""
    return {hosts.get(stage, hosts[wiring.CLI]), *(hosts[other] for other in listeners(stage))}


def endpoint(config: dict, stage: str, keys: curve.Keys | None) -> str | None:
    """`stage`'s endpoint when set by hand or derived from where it runs; None for the
    default (ipc:// in the run directory)."""
    given = config.get("stages", {}).get(stage, {}).get("endpoint")
    if given or keys is None or stage not in wiring.STAGES:
        return given or None
    hosts = where(config, keys)
    if not crosses_hosts(hosts, stage):
        return None
    return f"tcp://{keys.host(hosts[stage]).address}:{int(config['bus']['port']) + wiring.STAGES.index(stage)}"
