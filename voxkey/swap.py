"""voxkey swap: change one stage's settings in a running pipeline and restart only it.

    voxkey swap STAGE [--set key=value ...] [--run-dir DIR] [--config FILE]

The others keep running, and vad re-sends whatever the restart lost. A stage that
cannot start with the new settings, or is not ready within `cli.stall_timeout_s`, is
started again with the previous ones (exit status 1, saying why): a bad swap never
leaves the pipeline without the stage.
"""

import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import TYPE_CHECKING

from bus import config as configuration
from bus import sockets
from bus.asking import ControlError, ask
from bus.control import StageStatus
from bus.records import typed
from bus.wiring import STAGES
from voxkey import settings
from voxkey.running import CliError, running_dir

if TYPE_CHECKING:  # imported where used: `voxkey --help` and `voxkey listen` do without it
    from voxkey.supervise import Supervisor


def add_cli(commands) -> None:
    change = commands.add_parser("swap", help="change one stage's settings and restart only it")
    change.add_argument("stage", help=f"{', '.join(STAGES[:-1])} or {STAGES[-1]}")
    change.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of that stage")
    change.add_argument("--run-dir", help="the running pipeline's directory (default: voxkey up's)")
    change.add_argument("--config", help="a TOML file laid over the defaults (to find the run directory)")
    change.set_defaults(run=run)


def run(args) -> int:
    config = settings.load(args.config)
    run_dir = Path(args.run_dir) if args.run_dir else sockets.run_dir(config)
    pid = swap_stage(run_dir, args.stage, args.set)
    print(f"voxkey: {args.stage} restarted with {' '.join(args.set) or 'its settings'} (pid {pid})", file=sys.stderr)
    return 0


def swap_stage(run_dir: Path, stage: str, changes: list[str]) -> int:
    """Change one stage's settings (`changes`: KEY=VALUE of that stage) in a running
    pipeline's config and restart only that stage, or restart it with the previous
    settings if it fails with the new ones (CliError). Returns the new process id."""
    from voxkey.supervise import Supervisor

    if stage not in STAGES:
        raise CliError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")
    run_config = running_dir(run_dir) / "run.toml"
    previous = run_config.read_text()
    # run.toml is the whole configuration the run started with: the user's own file,
    # perhaps edited since, is not laid under it again.
    config = settings.settle(configuration.layers(run_config, [f"stages.{stage}.{item}" for item in changes]))
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


def restart_stage(supervisor: "Supervisor", stage: str) -> int:
    from voxkey.supervise import last_error

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


def wait_until_ready(config: dict, supervisor: "Supervisor", stage: str, pid: int, timeout_s: float) -> None:
    """Until the stage process `pid` says it is ready; CliError with its last error line
    if it exits or is replaced first, or once `timeout_s` has passed."""
    from voxkey.supervise import last_error

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = supervisor.states().get(stage, {})
        if info.get("pid") != pid or info.get("statename") != "RUNNING":
            raise CliError(f"{stage} cannot start: {last_error(supervisor.run_dir / f'{stage}.log')}")
        try:
            answer = typed(StageStatus, ask(config, stage, "status", {}, timeout_s=1.0))
        except ControlError:
            answer = None  # not answering yet: still loading its imports
        if answer and answer.ready and answer.pid == pid:
            return
        time.sleep(0.2)
    raise CliError(
        f"{stage} was not ready {timeout_s:.0f} s after it started; see {supervisor.run_dir / f'{stage}.log'}"
    )
