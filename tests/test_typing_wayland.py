"""A whole replay types into a real Wayland app: foot, focused in a headless sway, its
shell writing each line it gets to a file that the test reads back. The text goes
through every stage; replacements in dictation put Unicode in it."""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import AUDIO, assert_said, voxkey

from stages.keys.wtype import WtypeSink

UNICODE = [
    'stages.router.replacements={"maria" = "Zoë ✓", "report" = "café report", "afternoon" = "après-midi, naïve"}'
]
EXPECTED = "Please send the quarterly café report to Zoë ✓ before Friday après-midi, naïve."


@pytest.mark.parametrize("sink", ["wayland", "wtype", "auto"])
def test_a_replay_types_exactly_into_a_wayland_app(foot, sink):
    env = {**foot.env, "XDG_SESSION_TYPE": "wayland"}
    env.pop("DISPLAY", None)
    result = {}

    def replay_then_return():
        result["run"] = voxkey(
            "replay",
            AUDIO / "dictate_report.wav",
            "--sink",
            sink,
            "--keep",
            *sum((["--set", s] for s in UNICODE), []),
            env=env,
        )
        WtypeSink(env=env).type(0, "\n")  # the line reaches cat

    got = foot.typed(replay_then_return)
    run = result["run"]
    assert run.returncode == 0, run.stderr[-2000:]
    assert_said(run.stdout, EXPECTED)
    assert "Zoë ✓" in run.stdout and "après-midi, naïve" in run.stdout  # voxkey's replacements, Unicode
    assert got == run.stdout + "\n"  # exactly what voxkey says it typed, Unicode included
    run_dir = Path(re.search(r"logs kept in (\S+)", run.stderr).group(1))
    chosen = [json.loads(line) for line in (run_dir / "keys.log").read_text().splitlines() if '"typing sink"' in line]
    shutil.rmtree(run_dir)
    assert chosen[0]["sink"] == ("wayland" if sink == "auto" else sink)  # auto: the keyboard held open
    assert ("Wayland session" if sink == "auto" else "asked for") in chosen[0]["reason"]
