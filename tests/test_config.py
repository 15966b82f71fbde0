"""Settings are checked against bus/defaults.toml before anything starts: one line
naming the setting, the closest one that exists, and what is expected."""

import tomllib

import pytest
from conftest import voxkey

from bus import config as configuration
from bus.config import ConfigError


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


def test_a_replay_with_a_multi_word_replacement_types_it():
    """The README's example shape ("at sign" = "@"): a key that must be quoted in run.toml.
    Every stage starts, and what Whisper wrote of the phrase (in any case) is typed as
    its replacement."""
    result = voxkey("replay", "tests/audio/jfk.flac", "--set", 'stages.router.replacements={"ask not" = "ASK-NOT"}')
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ASK-NOT" in result.stdout and "ask not" not in result.stdout.lower(), result.stdout
