"""Settings are checked against bus/defaults.toml before anything starts: one line
naming the setting, the closest one that exists, and what is expected. They are laid
in layers -- the defaults, the user's own file ($XDG_CONFIG_HOME/voxkey/config.toml),
--config, --set -- and `voxkey config` shows where each came from."""

import os
import tomllib
from pathlib import Path

import pytest
from conftest import voxkey

from bus import config as configuration
from bus.config import ConfigError
from voxkey import show_config


@pytest.mark.parametrize(
    "override, said",
    [
        ("stages.asr.beam=1", "unknown setting stages.asr.beam: did you mean stages.asr.beam_size?"),
        ("bus.run_dirr=/tmp/x", "unknown setting bus.run_dirr: did you mean bus.run_dir?"),
        (
            "stages.ears.model=x",
            "unknown setting stages.ears: stages has capture, vad, asr, router, keys, instruct, thinking",
        ),
        (
            "stages=1",
            "stages is a section ([stages]), not a setting: set one of its settings, e.g. stages.capture.source=...",
        ),
        ("cli.stall_timeout_s=abc", 'cli.stall_timeout_s must be a number (default 120.0), not "abc"'),
        ("stages.asr.beam_size=2.5", "stages.asr.beam_size must be a whole number (default 1), not 2.5"),
        ("stages.vad.threshold=true", "stages.vad.threshold must be a number (default 0.5), not true"),
        ("stages.capture.frame_samples=-512", "stages.capture.frame_samples must be above 0, not -512 (default 512)"),
        ("stages.asr.beam_size=0", "stages.asr.beam_size must be above 0, not 0 (default 1)"),
        ("stages.keys.key_delay_ms=-1", "stages.keys.key_delay_ms must not be negative, not -1 (default 4)"),
        (
            'stages.router.replacements={"at sign" = 1}',
            'stages.router.replacements.at sign must be text (in quotes) (default ""), not 1',
        ),
        (
            "stages.capture.listen=vad",
            'stages.capture.listen must be a list, e.g. [0, 1] or ["a", "b"] (default []), not "vad"',
        ),
        (
            'stages.capture.listen=["vad", "ears"]',
            "stages.capture.listen: no participant 'ears' on the bus "
            "(known: capture, vad, asr, router, instruct, thinking, keys, cli)",
        ),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(override, said):
    with pytest.raises(ConfigError) as refused:
        configuration.load(overrides=[override])
    assert str(refused.value) == said


@pytest.mark.parametrize(
    "override",
    [
        "stages.keys.key_delay_ms=0",
        "stages.asr.min_avg_logprob=-2.5",
        "stages.vad.threshold=1",
        "stages.asr.endpoint=tcp://127.0.0.1:5555",
        'stages.router.replacements={"vox key" = "voxkey"}',
        "stages.capture.cpus=[0]",
    ],
)
def test_right_settings_pass(override):
    configuration.load(overrides=[override])


def test_up_refuses_a_wrong_setting_before_starting_anything(tmp_path):
    run_dir = tmp_path / "run"
    result = voxkey("up", "--set", f"bus.run_dir={run_dir}", "--set", "stages.asr.beam=1")
    assert result.returncode == 1
    assert result.stderr.strip() == "voxkey: unknown setting stages.asr.beam: did you mean stages.asr.beam_size?"
    assert not run_dir.exists()


def test_a_configuration_written_back_reads_back_the_same():
    """run.toml is what every stage starts from: each default setting, and table keys
    of the user's own words (multi-word, quotes, Unicode), read back unchanged."""
    config = configuration.load(overrides=['stages.capture.source="/tmp/a \\"recording\\" [1].wav"'])
    config["stages"]["router"]["replacements"] = {
        "at sign": "@",
        "dot com": ".com",
        'say "hi"': "hi",
        "café au lait": "☕",
        "new.line": "\n",
    }
    written = configuration.dumps(config)
    assert tomllib.loads(written) == config
    configuration.check(tomllib.loads(written), configuration.load())


def test_a_replay_with_a_multi_word_replacement_in_the_users_file_types_it(tmp_path):
    """The README's example shape ("at sign" = "@"), in the user's own file: a key that
    must be quoted in run.toml. Every stage starts, and what Whisper wrote of the phrase
    (in any case) is typed as its replacement."""
    result = voxkey("replay", "tests/audio/jfk.flac", env=users_file(tmp_path, '"ask not" = "ASK-NOT"'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ASK-NOT" in result.stdout and "ask not" not in result.stdout.lower(), result.stdout


def users_file(config_home: Path, *lines: str, section: str = "stages.router.replacements") -> dict:
    """An environment whose user's own file ($XDG_CONFIG_HOME/voxkey/config.toml) holds `lines` under `section`."""
    (config_home / "voxkey").mkdir(parents=True, exist_ok=True)
    (config_home / "voxkey" / "config.toml").write_text("\n".join([f"[{section}]", *lines, ""]))
    return {**os.environ, "XDG_CONFIG_HOME": str(config_home)}


def test_the_users_file_lies_under_config_and_set_and_voxkey_config_says_where_each_came_from(tmp_path):
    env = users_file(tmp_path, "beam_size = 3", 'language = "de"', section="stages.asr")
    mine = tmp_path / "voxkey" / "config.toml"
    given = tmp_path / "my.toml"
    given.write_text('[stages.asr]\nlanguage = "fr"\n[stages.router.replacements]\n"at sign" = "@"\n')
    result = voxkey("config", "--config", given, "--set", "stages.router.mode=chat", env=env)
    assert result.returncode == 0, result.stderr
    expected = tomllib.loads(configuration.DEFAULTS_PATH.read_text())
    expected["stages"]["asr"].update(beam_size=3, language="fr")
    expected["stages"]["router"].update(mode="chat", replacements={"at sign": "@"})
    assert tomllib.loads(result.stdout) == expected  # every setting, as TOML
    lines = result.stdout.splitlines()
    for line in (
        f"beam_size = 3  # {mine}",
        f'language = "fr"  # {given}',
        'mode = "chat"  # --set',
        f'"at sign" = "@"  # {given}',
        'compute_type = "int8"  # default',
        "[stages.router.replacements]",
        f"#   $XDG_CONFIG_HOME/voxkey/config.toml: {mine} (exists)",
        f"#   --config (or $VOXKEY_CONFIG): {given}",
        "#   --set: stages.router.mode=chat",
    ):
        assert line in lines, line


def test_what_voxkey_config_prints_reads_back_as_the_settings_whatever_their_keys():
    config = configuration.load(overrides=['stages.capture.source="/tmp/a \\"recording\\" [1].wav"'])
    config["stages"]["router"]["replacements"] = {"at sign": "@", 'say "hi"': "hi", "café": "☕", "new.line": "\n"}
    shown = show_config.render(config, {("stages", "router", "replacements", "café"): "/my.toml"}, ["default: x"])
    assert tomllib.loads(shown) == config
    assert '"café" = "☕"  # /my.toml' in shown.splitlines()


def test_without_a_users_file_every_setting_is_a_default_and_tests_never_read_the_real_one():
    result = voxkey("config")
    assert result.returncode == 0, result.stderr
    mine = Path(os.environ["XDG_CONFIG_HOME"]) / "voxkey" / "config.toml"  # conftest's empty folder
    assert f"#   $XDG_CONFIG_HOME/voxkey/config.toml: {mine} (does not exist: nothing read from it)" in result.stdout
    settings = [line for line in result.stdout.splitlines() if " = " in line and not line.startswith("#")]
    assert settings and all(line.endswith("  # default") for line in settings)
    assert tomllib.loads(result.stdout) == tomllib.loads(configuration.DEFAULTS_PATH.read_text())


@pytest.mark.parametrize(
    "written, said",
    [
        ("[stages.asr\nbeam_size = 1", "is not valid TOML: Expected ']' at the end of a table declaration"),
        ("[stages.asr]\nbeam = 1", "unknown setting stages.asr.beam: did you mean stages.asr.beam_size?"),
        ("[stages.asr]\nbeam_size = 0", "stages.asr.beam_size must be above 0, not 0 (default 1)"),
    ],
)
def test_a_broken_users_file_stops_the_command_naming_the_file_and_the_problem(tmp_path, written, said):
    (tmp_path / "voxkey").mkdir()
    (tmp_path / "voxkey" / "config.toml").write_text(written)
    run_dir = tmp_path / "run"
    result = voxkey("up", "--set", f"bus.run_dir={run_dir}", env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 1 and not run_dir.exists()
    [line] = result.stderr.splitlines()
    assert line.startswith(f"voxkey: config file {tmp_path / 'voxkey' / 'config.toml'}") and said in line, line


def test_the_users_file_is_found_as_the_xdg_base_directory_spec_says():
    assert configuration.user_file({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/voxkey/config.toml")
    assert configuration.user_file({"HOME": "/h"}) == Path("/h/.config/voxkey/config.toml")
    # A relative XDG_CONFIG_HOME is to be ignored, as an empty one.
    assert configuration.user_file({"XDG_CONFIG_HOME": "x", "HOME": "/h"}) == Path("/h/.config/voxkey/config.toml")
