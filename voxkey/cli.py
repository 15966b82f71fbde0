"""The `voxkey` command: the root parser and error reporting.

Each subcommand is a module of this package with `add_cli(commands)`, its usage in its
docstring (SUBCOMMANDS names them). Other packages add theirs through the
`voxkey.commands` entry point (`voxkey bench`). A failure the command
expects (bus.errors.Explained: CliError, ControlError, ConfigError, ModelError...) is
one line on stderr, `voxkey: ...`, and exit status 1.
"""

import argparse
import importlib
import os
import sys

from bus.errors import Explained

# Subcommand -> its module, in the order `voxkey --help` lists them. A command line
# imports only its own subcommand's module: a key binding's `voxkey listen hold` must
# not wait for every other command's imports (`voxkey bench --commands` times it).
SUBCOMMANDS = {
    "up": "up",
    "serve": "serve",
    "pair": "pair",
    "replay": "replaying",
    "swap": "swap",
    "listen": "listen",
    "status": "show_status",
    "tray": "tray",
    "config": "show_config",
    "held": "held",
    "mode": "mode",
    "cancel": "cancel",
    "conversation": "conversation",
    "models": "models",
    "doctor": "doctor",
    "service": "service",
    "gadget": "gadget",
}


def options(sub: argparse.ArgumentParser) -> None:
    """--config and --set, alike for every subcommand that reads the configuration."""
    sub.add_argument(
        "--config",
        default=os.environ.get("VOXKEY_CONFIG"),
        help="a TOML file laid over the defaults and $XDG_CONFIG_HOME/voxkey/config.toml",
    )
    sub.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for the command line `argv` (default: sys.argv[1:])."""
    root = argparse.ArgumentParser(prog="voxkey", description="A fully local, voice-first keyboard.")
    commands = root.add_subparsers(dest="command", required=True)
    word = first_word(sys.argv[1:] if argv is None else argv)
    for name in [word] if word in SUBCOMMANDS else SUBCOMMANDS:
        # A subcommand that reads the configuration as most do returns its parser for
        # options(); one that adds its own (swap, models, doctor, ...) returns None.
        configured = importlib.import_module(f"voxkey.{SUBCOMMANDS[name]}").add_cli(commands)
        if configured is not None:
            options(configured)
    # Commands other packages add (`voxkey bench`), found through their entry points,
    # so the runtime does not depend on them: only for a command line that may need
    # them (--help, or a subcommand that is not voxkey's own).
    if word not in SUBCOMMANDS:
        from importlib import metadata  # itself a noticeable wait

        for command in metadata.entry_points(group="voxkey.commands"):
            command.load()(commands)
    return root


def first_word(argv: list[str]) -> str:
    """The subcommand's name on a command line, or "" if it has none (the root's only option is --help)."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: list[str] | None = None) -> None:
    args = parser(argv).parse_args(argv)
    try:
        sys.exit(args.run(args))
    except Explained as error:
        print(f"voxkey: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
