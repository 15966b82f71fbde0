"""The configuration as the command loads it: bus/defaults.toml, the user's own file
($XDG_CONFIG_HOME/voxkey/config.toml, when it exists), the --config file and `--set`
overrides (bus/config.py), then the checks that only a stage package can make, so that
a setting no stage could run with stops the command before any stage starts."""

from bus import config as configuration
from stages.llm import scripted_engine


def load(path=None, overrides: list[str] = ()) -> dict:
    return settle(layers(path, overrides))


def layers(path=None, overrides: list[str] = ()) -> list[tuple[str, dict]]:
    """What the command's configuration is laid from, lowest first (bus/config.py)."""
    return configuration.layers(path, overrides, user=configuration.user_file())


def settle(found: list[tuple[str, dict]]) -> dict:
    config = configuration.settle(found)
    scripted_engine.check_config(config)
    return config
