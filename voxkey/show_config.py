"""voxkey config: the settings voxkey runs with, and where each came from.

    voxkey config [--config FILE] [--set section.key=value ...]

Prints, as TOML that reads back as those settings, every setting with the layer it came
from as a comment at the end of its line: `default` (bus/defaults.toml), the user's own
file ($XDG_CONFIG_HOME/voxkey/config.toml), the --config file, or `--set`. A header says
which files were looked for, in the order they are laid, and whether each exists. A
setting no stage could run with is refused as `voxkey up` refuses it (exit status 1).
"""

from pathlib import Path

import tomli_w

from bus import config as configuration
from voxkey import settings


def add_cli(commands):
    shown = commands.add_parser("config", help="the settings voxkey runs with, and where each came from")
    shown.set_defaults(run=run)
    return shown


def run(args) -> int:
    found = settings.layers(args.config, args.set)
    config = settings.settle(found)
    print(render(config, configuration.origins(found), looked_for(configuration.user_file(), args.config, args.set)))
    return 0


def looked_for(user: Path, given: str | None, overrides: list[str]) -> list[str]:
    """What the settings are laid from, lowest first, each saying whether it is there."""
    mine = "exists" if user.exists() else "does not exist: nothing read from it"
    return [
        f"default: {configuration.DEFAULTS_PATH}",
        f"$XDG_CONFIG_HOME/voxkey/config.toml: {user} ({mine})",
        f"--config (or $VOXKEY_CONFIG): {given}" if given else "--config (or $VOXKEY_CONFIG): none given",
        "--set: " + (" ".join(overrides) if overrides else "none given"),
    ]


def render(config: dict, origins: dict[tuple[str, ...], str], sources: list[str]) -> str:
    """The settings as TOML, each line ending with where its value came from. Pure."""
    header = [
        "# The settings voxkey runs with; each line ends with where its value came from.",
        "# Laid in this order, each over the one before:",
        *(f"#   {source}" for source in sources),
    ]
    return "\n".join(header + table_lines(config, origins))


def table_lines(table: dict, origins: dict[tuple[str, ...], str], above: tuple[str, ...] = ()) -> list[str]:
    """A table's settings, then its tables (TOML wants them in that order)."""
    values = {key: value for key, value in table.items() if not isinstance(value, dict)}
    lines = []
    if above and (values or not table):  # an empty table is shown too: [stages.router.replacements]
        lines += ["", f"[{'.'.join(toml_key(key) for key in above)}]"]
    for key, value in values.items():
        written = f"{toml_key(key)} = {configuration.dumps_value(value)}"  # on one line, for its comment
        lines.append(f"{written}  # {origins.get((*above, key), 'default')}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines += table_lines(value, origins, (*above, key))
    return lines


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare if it can be, else quoted and escaped."""
    return tomli_w.dumps({key: 0}).rsplit(" = ", 1)[0]
