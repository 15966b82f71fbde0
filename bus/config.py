"""Configuration, laid in layers, each over the one before: bus/defaults.toml, the user's
own file ($XDG_CONFIG_HOME/voxkey/config.toml, when the command reads it and it exists),
the file given with --config, then `section.key=value` overrides. Every setting knows
the layer it came from (`origins`), for `voxkey config`."""

import copy
import os
import tomllib
from pathlib import Path

from bus.errors import Explained

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")


class ConfigError(Explained):
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
RANGES = {"hid_key_delay_ms": (0, 1000), "port": (1024, 65535 - 6)}
# The OpenMP wait policies (bus/cpus.py).
WAIT_POLICIES = ("passive", "active", "default")
CHOICES = {"wait": WAIT_POLICIES}


def load(path: str | os.PathLike | None = None, overrides: list[str] = (), user: Path | None = None) -> dict:
    """The configuration, checked against the defaults before anything uses it. `user`:
    the user's own file (user_file()), laid under `path` if it exists; a stage, started
    from its run's complete file, reads none."""
    return settle(layers(path, overrides, user))


def layers(
    path: str | os.PathLike | None = None, overrides: list[str] = (), user: Path | None = None
) -> list[tuple[str, dict]]:
    """What the configuration is laid from, lowest first, as (where it came from, its
    settings): "default", the user's file and `path` by their paths, "--set". A file's
    wrong setting is refused naming the file, which `check` of the whole could not."""
    defaults = _read(DEFAULTS_PATH)
    found = [("default", defaults)]
    files = [user] if user is not None and user.exists() else []
    for file in [*files, *([Path(path)] if path else [])]:
        settings = _read(file)
        try:
            check(settings, defaults)
        except ConfigError as error:
            raise ConfigError(f"config file {file}: {error}") from None
        found.append((str(file), settings))
    if overrides:
        given: dict = {}
        for item in overrides:
            apply_override(given, item)
        found.append(("--set", given))
    return found


def settle(layers: list[tuple[str, dict]]) -> dict:
    """The layers merged, in order, and checked against the first (the defaults)."""
    (_, defaults), *above = layers
    config = copy.deepcopy(defaults)
    for _, settings in above:
        merge(config, settings)
    check(config, defaults)
    return config


def origins(layers: list[tuple[str, dict]]) -> dict[tuple[str, ...], str]:
    """Each setting (its path of keys) -> where the value it has came from: the last
    layer that set it."""
    found = {}
    for source, settings in layers:
        for keys in leaves(settings):
            found[keys] = source
    return found


def leaves(table: dict, above: tuple[str, ...] = ()):
    """The path of keys of every setting in a table (a value that is not a table)."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from leaves(value, (*above, key))
        else:
            yield (*above, key)


def user_file(env=os.environ) -> Path:
    """The user's own settings: voxkey/config.toml in config_home()."""
    return config_home(env) / "voxkey" / "config.toml"


def config_home(env=os.environ) -> Path:
    """$XDG_CONFIG_HOME, else ~/.config (the XDG base directory spec: a relative
    XDG_CONFIG_HOME is to be ignored)."""
    home = env.get("XDG_CONFIG_HOME", "")
    return Path(home) if os.path.isabs(home) else Path(env.get("HOME") or "~").expanduser() / ".config"


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
            import difflib  # only to name a mistake

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
    from bus import wiring  # only for this setting: it imports every frame's record

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
        import tomli_w  # writing is rare: `voxkey listen` need not load it

        return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()
    except TypeError:
        return repr(value)


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read ({error.strerror}): make it a readable file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}; correct it there") from None


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
        if not isinstance(node.get(name), dict):  # what a later override goes under
            node[name] = {}
        node = node[name]
    node[key] = value


def stage_section(config: dict, stage: str) -> dict:
    try:
        return config["stages"][stage]
    except KeyError:
        raise ConfigError(f"config has no [stages.{stage}] section") from None


def dumps(config: dict) -> str:
    """A configuration written back as TOML that reads back the same (tomli-w quotes
    what must be quoted: a replacement's key "at sign", a path, any Unicode)."""
    import tomli_w

    return tomli_w.dumps(config)
