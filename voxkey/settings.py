"""The configuration as the command loads it: bus/defaults.toml, the user's file and
`--set` overrides (bus/config.py), then the checks that only a stage package can make,
so that a setting no stage could run with stops the command before any stage starts."""

from bus import config as configuration
from stages.llm import scripted_engine


def load(path=None, overrides: list[str] = ()) -> dict:
    config = configuration.load(path, overrides)
    scripted_engine.check_config(config)
    return config
