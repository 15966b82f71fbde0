"""What the subcommands that talk to a running voxkey share: finding its run directory,
telling one of its stages a command, and CliError, the failure the command reports as
one line (`voxkey: ...`, exit status 1)."""

import sys
from pathlib import Path

from bus import asking, sockets
from bus import config as configuration
from bus.errors import Explained


class CliError(Explained):
    pass


def running_dir(run_dir: Path) -> Path:
    """The run directory of a running voxkey, checked to be private."""
    if not (run_dir / "run.toml").is_file():
        raise CliError(f"no running voxkey in {run_dir}: start one with voxkey up")
    sockets.check_private_dir(run_dir)
    return run_dir


def tell(args, stage: str, command: str, command_args: dict) -> int:
    """Send one control command to a stage of the voxkey that `args` (--config, --set)
    configure, and print its answer; ControlError if it is not carried out. Its
    configuration is checked as every command's, but for what only a stage package can
    check (voxkey/settings.py), which would cost a key binding's command its quick start."""
    config = configuration.load(args.config, args.set, user=configuration.user_file())
    running_dir(sockets.run_dir(config))
    reply = asking.ask(config, stage, command, command_args)
    print(f"voxkey: {reply}", file=sys.stderr)
    return 0
