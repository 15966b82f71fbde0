"""Configuration: bus/defaults.toml, then one user TOML file, then `section.key=value` overrides."""

import copy
import os
import tomllib
from pathlib import Path

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
STAGES = ("capture", "vad", "asr", "router", "instruct", "thinking", "keys")


class ConfigError(Exception):
    pass


def load(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> dict:
    config = _read(DEFAULTS_PATH)
    if path:
        merge(config, _read(Path(path)))
    for item in overrides:
        apply_override(config, item)
    return config


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
    """Write a config back as TOML (the subset voxkey uses: tables, scalars, lists)."""
    lines: list[str] = []
    _dump_table(config, [], lines)
    return "\n".join(lines) + "\n"


def _dump_table(table: dict, prefix: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if prefix and scalars:
        lines.append(f"[{'.'.join(prefix)}]")
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            _dump_table(value, prefix + [key], lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")
