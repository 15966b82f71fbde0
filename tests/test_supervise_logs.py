"""Logs are bounded: they live in the run directory, RAM (tmpfs) on the Pi.

supervisord.conf rotates every stage log and supervisord's own at a few MB; supervisord
runs `silent`, so supervisord.out (which nothing rotates) does not copy its log; `Health`
keeps reading crashes across a rotation of supervisord's log; the thinking stage logs
how much it thought, not what.
"""

import configparser
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from supervisor.datatypes import boolean, byte_size
from test_thinking_path import (
    ANSWERS_FROM_THE_RESULT,
    CALLS_THE_CALCULATOR,
    MARKER,
    LoggedStage,
    final_piece,
    write_script,
)

from bus import frames, wiring
from voxkey.supervise import SUPERVISORD_CONF, Health, Supervisor

MB = 1024 * 1024
BUDGET = 64 * MB  # every log at its largest, together: a small part of a 4 GB Pi's ~400 MB runtime tmpfs


def conf() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()  # raw: %(ENV_...)s is supervisord's to expand
    parser.read(SUPERVISORD_CONF)
    return parser


def largest(section, stream: str) -> int:
    """The most a rotated log takes, backups included; refuses an unbounded one (0)."""
    maxbytes, backups = byte_size(section[f"{stream}_maxbytes"]), int(section[f"{stream}_backups"])
    assert 0 < maxbytes <= 5 * MB and 1 <= backups <= 3, (stream, maxbytes, backups)
    return maxbytes * (1 + backups)


def test_every_log_supervisord_writes_is_rotated_within_a_budget_that_fits_a_pi():
    parsed = conf()
    own = parsed["supervisord"]
    assert boolean(own["silent"]), "in the foreground supervisord would copy its log to supervisord.out"
    total = largest(own, "logfile")
    for stage in wiring.STAGES:
        program = parsed[f"program:{stage}"]
        total += largest(program, "stdout_logfile") + largest(program, "stderr_logfile")
    assert total <= BUDGET, f"{total / MB:.0f} MB"


class StandInStages(Supervisor):
    """The real supervisord and supervisord.conf; a stand-in in the place of python, since
    no stage writes megabytes in a test's time: vad writes 6 MB to its log, every other
    stage waits for supervisord to stop it."""

    def environment(self) -> dict[str, str]:
        stand_in = self.run_dir / "python"
        stand_in.write_text(
            textwrap.dedent(f"""\
                #!{sys.executable}
                import signal, sys
                if sys.argv[1:3] == ["-m", "stages.vad"]:  # called as PYTHON -m stages.NAME --config FILE
                    line = "x" * 99 + "\\n"
                    for _ in range(60_000):
                        sys.stderr.write(line)
                    sys.stderr.write("END\\n")
                    sys.stderr.flush()
                signal.pause()
            """)
        )
        stand_in.chmod(0o700)
        return dict(super().environment(), VOXKEY_PYTHON=str(stand_in))


def test_a_stage_log_is_rotated_by_supervisord_and_supervisord_out_stays_empty():
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    supervisor = StandInStages(run_dir, run_dir / "run.toml")
    supervisor.start()
    try:
        log, deadline = run_dir / "vad.log", time.monotonic() + 60
        while not (log.exists() and log.read_bytes().endswith(b"END\n")):
            assert supervisor.alive() and time.monotonic() < deadline, (run_dir / "supervisord.out").read_text()
            time.sleep(0.1)  # polling for supervisord to have written it all; the check is the loop's condition
        # supervisord rotates once a write has taken a log to its size: past it by one read
        # of the stage's output at most (128 KiB, supervisor/options.py).
        limit = byte_size(conf()["program:vad"]["stderr_logfile_maxbytes"]) + 128 * 1024
        kept = {path.name: path.stat().st_size for path in run_dir.glob("vad.log*")}
        assert sorted(kept) == ["vad.log", "vad.log.1"], kept  # 6 MB written, 4 MB kept: the oldest went
        assert max(kept.values()) <= limit, kept
        assert "spawned: 'vad'" in (run_dir / "supervisord.log").read_text()
    finally:
        supervisor.stop()
    assert (run_dir / "supervisord.out").read_bytes() == b"", "supervisord's log copied to its unrotated stdout"
    assert supervisor.left_behind() == []


class Alive:
    """Health's view of supervisord, standing in for one that runs and has no failed stage."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def alive(self) -> bool:
        return True

    def states(self) -> dict:
        return {}

    def failed(self, states) -> dict:
        return {}


def test_crashes_are_counted_across_a_rotation_of_supervisords_log(tmp_path):
    """Three crashes, the log rotated after the second (supervisord's RotatingFileHandler
    renames it to .1 and opens a new one; done here by hand: a megabyte of state changes
    would take a real supervisord thousands of crashes)."""
    log = tmp_path / "supervisord.log"
    log.write_text("2026-11-24 06:40:00,000 INFO supervisord started\n")
    health = Health(Alive(tmp_path))

    def crash(at: int) -> None:
        with open(log, "a") as file:
            file.write(f"2026-11-24 06:40:0{at},000 WARN exited: asr (terminated by SIGKILL; not expected)\n")

    crash(1)
    assert health.problems(now=1.0) == []
    crash(2)
    os.replace(log, tmp_path / "supervisord.log.1")  # both crashes unread yet: one in the file now rotated
    log.write_text("")
    crash(3)
    [problem] = health.problems(now=3.0)
    assert problem.startswith("stage asr keeps crashing (3 crashes"), problem
    crash(4)
    assert health.problems(now=4.0) == []  # said once per loop; nothing read twice


def test_the_thinking_stage_logs_how_much_it_thought_and_never_what(tmp_path):
    """The real stage, a scripted model (tests/test_thinking_path.py says why): its
    reasoning and the tool's arguments and result are the question's matter, so its log
    at info holds their sizes only."""
    script = write_script(tmp_path, CALLS_THE_CALCULATOR, ANSWERS_FROM_THE_RESULT)
    stage = LoggedStage("thinking", ["router"], f"stages.thinking.model={script}")
    try:
        stage.send("router", frames.Request(mode="converse", text="What is 17 times 23?"), utt="u", key="u")
        stage.frames(final_piece)
        logged = stage.events()
    finally:
        stage.close()
    # The scripted engine logs each token it plays (a test's stand-in, never in production): left out.
    events = [event for event in logged if event["event"] != "scripted token"]
    assert not [event for event in events if MARKER in str(event) or "17*23" in str(event)]
    thoughts = [event for event in events if event["event"] == "thought"]
    assert len(thoughts) == 2 and all(event["pieces"] > 0 and event["chars"] > 0 for event in thoughts)
    [tool] = [event for event in events if event["event"] == "tool"]
    assert (tool["name"], tool["ok"], tool["chars"]) == ("calculator", True, 3)
