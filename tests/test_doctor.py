"""`voxkey doctor` on this machine: every check prints a verdict, a missing part fails it
with the fix. The judges are pure and tested on numbers."""

import re
import subprocess
import wave
from pathlib import Path

import pytest
from conftest import AUDIO, REPO, VOXKEY, voxkey

from voxkey.doctor import judge_level, judge_memory

VERDICT_LINE = re.compile(r"^(ok  |warn|FAIL)  [\w ]+: \S")


def checks_of(output: str) -> dict[str, str]:
    """check name -> verdict, asserting that every line is a verdict or a fix."""
    lines = output.splitlines()
    assert lines[-1].startswith("voxkey doctor: ")
    for line in lines[:-1]:
        assert VERDICT_LINE.match(line) or line.startswith("      fix: "), line
    return {line[6:].split(":")[0]: line[:4].strip() for line in lines[:-1] if VERDICT_LINE.match(line)}


@pytest.mark.parametrize(
    "rms, peak, clipped, verdict, said",
    [
        (0.0, 0.0, 0.0, "warn", "silent"),
        (0.00001, 0.0002, 0.0, "warn", "silent"),
        (0.05, 0.4, 0.0, "ok", "RMS -26 dBFS"),
        (0.1, 1.0, 0.00001, "ok", "peak 0 dBFS"),
        (0.3, 1.0, 0.02, "warn", "clipping"),
    ],
)
def test_levels_are_judged(rms, peak, clipped, verdict, said):
    got, detail, fix = judge_level(rms, peak, clipped)
    assert got == verdict and said in detail and bool(fix) == (verdict != "ok")


def test_memory_is_judged_against_the_ram():
    production = {"asr tiny.en": 75, "instruct lfm2.5": 664, "thinking lfm2.5": 700}
    assert judge_memory(production, 7, 4096)[0] == "ok"  # a Pi 5 with 4 GB
    assert judge_memory(production, 7, 2560)[0] == "warn"
    verdict, detail, fix = judge_memory(production, 7, 1024)
    assert verdict == "FAIL" and "about 1929 MB of 1024 MB" in detail and "thinking lfm2.5" in fix


def test_doctor_checks_everything_and_fails_on_a_missing_model():
    result = voxkey("doctor", "--no-mic", "--set", "stages.instruct.model=/nonexistent/model.gguf")
    assert result.returncode == 1, result.stdout + result.stderr
    checks = checks_of(result.stdout)
    assert set(checks) == {
        "session",
        "microphone",
        "typing",
        "uinput",
        "usb gadget",
        "heat",
        "model asr",
        "model instruct",
        "model thinking",
        "whisper base",
        "whisper small",
        "memory",
        "supervisord",
        "run directory",
    }
    assert checks["model instruct"] == "FAIL" and checks["model asr"] == "ok"
    assert "/nonexistent/model.gguf not found" in result.stdout and "fix: voxkey models fetch" in result.stdout
    # The multilingual models: base built in (./install --multilingual), small downloaded or how to get it.
    assert checks["whisper base"] == "ok" and "built-in multilingual model base at " in result.stdout
    if checks["whisper small"] != "ok":
        assert "fix: voxkey models fetch whisper-small" in result.stdout
    # The microphone may fail too: whether one exists here depends on the audio server.
    problems = result.stdout.splitlines()[-1]
    assert "model instruct" in problems and set(problems.split(": ", 2)[-1].split(", ")) <= {
        "model instruct",
        "microphone",
    }


def test_doctor_names_a_missing_microphone_and_the_devices_there_are():
    result = voxkey("doctor", "--set", "stages.capture.source=mic:NoSuchMicrophone")
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "microphone:" in line)
    assert line.startswith("FAIL") and "NoSuchMicrophone" in line and "devices:" in line


def long_recording(tmp_path) -> Path:
    """A recording long enough to outlast doctor's start and its listening."""
    with wave.open(str(AUDIO / "dictate_report.wav")) as speech:
        params, frames = speech.getparams(), speech.readframes(speech.getnframes())
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * 8)
    return path


def test_doctor_measures_the_microphone_level(microphone, tmp_path):
    """A real PulseAudio microphone hears a recording played while doctor listens."""
    player = subprocess.Popen(["paplay", "-d", microphone, str(long_recording(tmp_path))])
    try:
        result = voxkey("doctor")
    finally:
        player.kill()
    line = next(line for line in result.stdout.splitlines() if "microphone:" in line)
    assert line.startswith("ok") and "level over 2 s: RMS" in line and "silent" not in line


def test_doctor_presses_a_harmless_key_with_the_backend_auto_picks(foot):
    env = {**foot.env, "XDG_SESSION_TYPE": "wayland"}
    result = subprocess.run(
        [*VOXKEY, "doctor", "--no-mic"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    line = next(line for line in result.stdout.splitlines() if "typing:" in line)
    assert line.startswith("ok") and "auto would use wayland" in line and "a test key (Shift) was pressed" in line
    assert checks_of(result.stdout)["session"] == "ok"
