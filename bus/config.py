"""Configuration: bus/defaults.toml, then one user TOML file, then `section.key=value` overrides."""

import copy
import difflib
import os
import tomllib
from pathlib import Path

import tomli_w

from bus import cpus, wiring

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")


class ConfigError(Exception):
    pass


# Settings not in defaults.toml that a stage section may have.
OPTIONAL_STAGE_SETTINGS = {"endpoint": "ipc://<run_dir>/<stage>.sock", "listen": []}
# Tables whose keys are the user's own words.
USER_TABLES = {"stages.router.replacements"}
# Numbers that must be above zero; every other number whose default is not negative
# must not be negative.
POSITIVE = {
    "frame_samples",
    "beam_size",
    "heartbeat_s",
    "stall_timeout_s",
    "context_tokens",
    "conversation_tokens",
    "end_of_speech_ms",
    "max_utterance_s",
    "retain_s",
    "clarify_timeout_s",
    "thinking_budget_tokens",
    "max_held_s",
    "chunk_chars",
    "next_mode_s",
}
# Numbers with bounds of their own: name -> (lowest, highest).
RANGES = {"hid_key_delay_ms": (0, 1000)}
CHOICES = {"wait": cpus.WAIT_POLICIES}


def load(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> dict:
    """The configuration, checked against the defaults before anything uses it."""
    defaults = _read(DEFAULTS_PATH)
    config = copy.deepcopy(defaults)
    if path:
        merge(config, _read(Path(path)))
    for item in overrides:
        apply_override(config, item)
    check(config, defaults)
    return config


def check(config: dict, defaults: dict, where: str = "") -> None:
    """Every setting is one defaults.toml knows, of the type its default has, and in
    range; otherwise ConfigError, naming the setting, the closest one that exists, and
    what is expected."""
    for key, value in config.items():
        name = f"{where}.{key}" if where else key
        if key not in defaults:
            if where.startswith("stages.") and key in OPTIONAL_STAGE_SETTINGS:
                expect_type(name, value, OPTIONAL_STAGE_SETTINGS[key])
                if key == "listen":
                    expect_peers(name, value)
                continue
            close = difflib.get_close_matches(key, list(defaults), n=1, cutoff=0.6)
            hint = (
                f"did you mean {where + '.' if where else ''}{close[0]}?"
                if close
                else f"{where or 'the top level'} has {', '.join(defaults)}"
            )
            raise ConfigError(f"unknown setting {name}: {hint}")
        expected = defaults[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{name} is a section ([{name}]), not a setting: "
                    f"set one of its settings, e.g. {first_setting(expected, name)}=..."
                )
            if name in USER_TABLES:
                for heard, typed in value.items():
                    expect_type(f"{name}.{heard}", typed, "")
            else:
                check(value, expected, name)
            continue
        expect_type(name, value, expected)
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"{name} must be one of {', '.join(CHOICES[key])}, not {value!r} (default {expected!r})")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key in POSITIVE and value <= 0:
                raise ConfigError(f"{name} must be above 0, not {value} (default {expected})")
            if expected >= 0 and value < 0:
                raise ConfigError(f"{name} must not be negative, not {value} (default {expected})")
            low, high = RANGES.get(key, (value, value))
            if not low <= value <= high:
                raise ConfigError(f"{name} must be from {low} to {high}, not {value} (default {expected})")


def expect_peers(name: str, peers: list) -> None:
    """`listen` names participants of the bus: stages, or the command."""
    known = (*wiring.STAGES, wiring.CLI)
    for peer in peers:
        if peer not in known:
            raise ConfigError(f"{name}: no participant {peer!r} on the bus (known: {', '.join(known)})")


def first_setting(section: dict, name: str) -> str:
    key, value = next(iter(section.items()), ("key", ""))
    return first_setting(value, f"{name}.{key}") if isinstance(value, dict) else f"{name}.{key}"


def expect_type(name: str, value, default) -> None:
    """`value` has the type of `default` (an int will do for a float)."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (isinstance(default, float) or isinstance(value, int))
        )
        kind = "a whole number" if isinstance(default, int) else "a number"
    elif isinstance(default, list):
        ok, kind = isinstance(value, list), 'a list, e.g. [0, 1] or ["a", "b"]'
    else:
        ok, kind = isinstance(value, str), "text (in quotes)"
    if not ok:
        raise ConfigError(f"{name} must be {kind} (default {dumps_value(default)}), not {dumps_value(value)}")


def dumps_value(value) -> str:
    """A value as TOML writes it, on one line, for a message."""
    if isinstance(value, list):
        return "[" + ", ".join(dumps_value(item) for item in value) + "]"
    try:
        return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()
    except TypeError:
        return repr(value)


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def apply_override(config: dict, item: str) -> None:
    """`stages.asr.beam_size=1`: the value is parsed as TOML, else taken as a string."""
    dotted, sep, raw = item.partition("=")
    if not sep or not dotted.strip():
        raise ConfigError(f"override {item!r} is not of the form section.key=value")
    *sections, key = dotted.strip().split(".")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node = config
    for name in sections:
        node = node.setdefault(name, {})
    node[key] = value


def stage_section(config: dict, stage: str) -> dict:
    try:
        return config["stages"][stage]
    except KeyError:
        raise ConfigError(f"config has no [stages.{stage}] section") from None


def dumps(config: dict) -> str:
    """A configuration written back as TOML that reads back the same (tomli-w quotes
    what must be quoted: a replacement's key "at sign", a path, any Unicode)."""
    return tomli_w.dumps(config)
