"""The `voxkey` command: the root parser and error reporting.

Each subcommand is a module of this package with `add_cli(commands)`, its usage in its
docstring: up (up.py), replay (replaying.py), swap, listen, status (show_status.py),
held, mode, cancel, conversation, models, doctor, service and gadget. Other packages add theirs
through the `voxkey.commands` entry point (`voxkey bench`). A failure the command
expects (CliError, ControlError, ConfigError, ModelError) is one line on stderr,
`voxkey: ...`, and exit status 1.
"""

import argparse
import os
import sys

from bus.config import ConfigError
from bus.control import ControlError
from bus.models import ModelError
from voxkey import (
    cancel,
    conversation,
    doctor,
    gadget,
    held,
    listen,
    mode,
    models,
    replaying,
    service,
    show_status,
    swap,
    up,
)
from voxkey.running import CliError

# In the order `voxkey --help` lists them.
SUBCOMMANDS = (
    up,
    replaying,
    swap,
    listen,
    show_status,
    held,
    mode,
    cancel,
    conversation,
    models,
    doctor,
    service,
    gadget,
)


def options(sub: argparse.ArgumentParser) -> None:
    """--config and --set, alike for every subcommand that reads the configuration."""
    sub.add_argument("--config", default=os.environ.get("VOXKEY_CONFIG"), help="a TOML file laid over the defaults")
    sub.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for the command line `argv` (default: sys.argv[1:])."""
    root = argparse.ArgumentParser(prog="voxkey", description="A fully local, voice-first keyboard.")
    commands = root.add_subparsers(dest="command", required=True)
    for subcommand in SUBCOMMANDS:
        # A subcommand that reads the configuration as most do returns its parser for
        # options(); one that adds its own (swap, models, doctor, ...) returns None.
        configured = subcommand.add_cli(commands)
        if configured is not None:
            options(configured)
    # Commands other packages add (`voxkey bench`), found through their entry points,
    # so the runtime does not depend on them. Loaded only for a command line that may
    # need them (--help, or a subcommand that is not voxkey's own): importing one can
    # take longer than a key binding's `voxkey listen hold` should wait.
    if first_word(sys.argv[1:] if argv is None else argv) not in commands.choices:
        import importlib.metadata  # itself a noticeable part of that wait

        for command in importlib.metadata.entry_points(group="voxkey.commands"):
            command.load()(commands)
    return root


def first_word(argv: list[str]) -> str:
    """The subcommand's name on a command line, or "" if it has none (the root's only option is --help)."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: list[str] | None = None) -> None:
    args = parser(argv).parse_args(argv)
    try:
        sys.exit(args.run(args))
    except (CliError, ControlError, ConfigError, ModelError) as error:
        print(f"voxkey: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
