"""Stages on another host, as the user sees them: where each runs, and how its link is.

A stage there has no control socket here, so what is known of it is what the stages
here that listen to it heard: the heartbeats they took of it, and the round trip they
timed on them (bus/peer.py), which they tell in their `status` (StageStatus.links).
`voxkey status` and `voxkey doctor` show a line per such stage; a pipeline on one host
has none, and their output is as it always was.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from bus import placement, wiring
from bus.control import PeerLink, StageStatus

# Heartbeat periods a stage may go unheard before it is taken for gone: one lost beat,
# or one sent late by a busy stage, is no outage.
OUTAGE_BEATS = 3
ASK = "is `voxkey serve` running there, and the network up?"


@dataclass(frozen=True)
class RemoteStage:
    stage: str
    host: str  # as paired (`voxkey pair`)
    address: str

    def __str__(self) -> str:
        where = f" ({self.address})" if self.address and self.address != self.host else ""
        return f"{self.stage} on {self.host}{where}"


@dataclass(frozen=True)
class Report:
    line: str
    verdict: str  # "ok", "warn" or "FAIL", as `voxkey doctor` has them
    fix: str = ""


def add_argument(parser) -> None:
    """`--remote HOST`, for the commands that run the keyboard's half (up, replay)."""
    parser.add_argument(
        "--remote",
        metavar="HOST",
        default="",
        help="a paired host runs placement.stages (asr, instruct, thinking): start them there with `voxkey serve`",
    )


def apply(config: dict, host: str) -> None:
    if host:
        config["placement"]["host"] = host


def as_running(config: dict, run_dir: Path) -> dict:
    """`config` with the placement of the voxkey last started in `run_dir`: `up --remote`
    and `serve` take theirs from their command line, and keep it only in its run.toml.
    One given (`--remote`) wins."""
    if config.get("placement", {}).get("host"):
        return config
    try:
        running = tomllib.loads((run_dir / "run.toml").read_text()).get("placement")
    except (OSError, tomllib.TOMLDecodeError):
        return config
    return {**config, "placement": running} if running else config


def remote_stages(config: dict) -> dict[str, RemoteStage]:
    """The stages another host runs, in pipeline order; none for a pipeline on one host."""
    keys = placement.keys_of(config)
    if keys is None:
        return {}
    hosts = placement.where(config, keys)
    return {
        stage: RemoteStage(stage, hosts[stage], keys.host(hosts[stage]).address)
        for stage in wiring.STAGES
        if hosts[stage] != keys.here
    }


def listeners_here(remote: dict[str, RemoteStage]) -> list[str]:
    """The stages of this host that listen to one of `remote`: those that can tell of it."""
    return [
        stage
        for stage in wiring.STAGES
        if stage not in remote and any(stage in placement.listeners(other) for other in remote)
    ]


def seen_from_here(stage: str, answers: dict[str, StageStatus | str]) -> PeerLink | None:
    """The freshest word of `stage` among the answers of the stages that listen to it,
    one with a round trip timed first; None if none of them has heard it."""
    links = [
        answer.links[stage]
        for listener in placement.listeners(stage)
        if isinstance(answer := answers.get(listener), StageStatus) and stage in answer.links
    ]
    return min(links, key=lambda link: (link.round_trip_ms is None, link.heard_s), default=None)


def placements_differ(heard: list[str], theirs: list[str]) -> str:
    """What to check for a stage never heard while `heard`, other stages of its host,
    are: not the network, but a stage still loading there (it beats once before it
    loads, a beat the link may not have carried yet), or a host that runs other stages
    than `theirs`."""
    return (
        f"{', '.join(heard)} there {'is' if len(heard) == 1 else 'are'} heard: is it still loading, or does "
        f"`voxkey serve` run other stages there? placement.stages must be the same on both hosts "
        f"(here: {', '.join(theirs)})"
    )


def why_unheard(stage: str, remote: dict[str, RemoteStage], heard: set[str], otherwise: str = ASK) -> str:
    """What to check for `stage` never heard, given which of `remote` are `heard`:
    placements that differ when others of its host are, else `otherwise`."""
    theirs = [other for other, there in remote.items() if there.host == remote[stage].host]
    others = [other for other in theirs if other in heard]
    return placements_differ(others, theirs) if others else otherwise


def judge(
    remote: RemoteStage, link: PeerLink | None, listening: bool | None, period_s: float, why: str = ASK
) -> Report:
    """How the link to `remote` is, as the stages here heard it, with heartbeats every
    `period_s`. `listening`: one of the stages here that listen to it answered; None:
    none here listens to it (capture, seen from the host of asr). `why`: what to check
    if it was never heard. Pure."""
    reach = f"start `voxkey serve` there, and check the network (ping {remote.address or remote.host})"
    if listening is None:
        return Report(f"{remote}: no stage here listens to it", "ok")
    if link is None and not listening:
        return Report(f"{remote}: not known, nothing here that listens to it runs", "warn", "start voxkey: voxkey up")
    if link is None:
        return Report(f"{remote}: not heard here: {why}", "FAIL", reach)
    if link.heard_s > OUTAGE_BEATS * period_s:
        return Report(f"{remote}: not heard for {link.heard_s:.0f} s: {ASK}", "FAIL", reach)
    timed = f"round trip {link.round_trip_ms:.1f} ms" if link.round_trip_ms is not None else "round trip not timed yet"
    line = f"{remote}: {'ready' if link.ready else 'not ready'}, heard {link.heard_s:.1f} s ago, {timed}"
    return Report(line, "ok" if link.ready else "warn")


def reports(
    remote: dict[str, RemoteStage], answers: dict[str, StageStatus | str], period_s: float
) -> dict[str, Report]:
    """stage -> its Report, for each of `remote`, from the answers of the stages here."""
    links = {stage: seen_from_here(stage, answers) for stage in remote}
    heard = {stage for stage, link in links.items() if link is not None}
    return {
        stage: judge(where, links[stage], answered(stage, remote, answers), period_s, why_unheard(stage, remote, heard))
        for stage, where in remote.items()
    }


def answered(stage: str, remote: dict[str, RemoteStage], answers: dict[str, StageStatus | str]) -> bool | None:
    """Whether a stage here that listens to `stage` answered; None if none here listens."""
    here = [listener for listener in placement.listeners(stage) if listener not in remote]
    return any(isinstance(answers.get(listener), StageStatus) for listener in here) if here else None
