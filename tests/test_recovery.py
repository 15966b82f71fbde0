"""Exactly-once typing across crashes: SIGKILL one stage at a seeded point of a replay
(the n-th report of typing, so the kill falls inside the replay on any machine);
supervisord restarts it, and the typed text equals that of an undisturbed run."""

import os
import random
import signal

import pytest
from conftest import AUDIO
from test_modes import concatenate

from bus import config as configuration
from voxkey import replay

KILLABLE = ["vad", "asr", "router", "instruct", "thinking", "keys"]  # capture excepted: unheard audio is gone
SEED = int(os.environ.get("VOXKEY_KILL_SEED", "9"))  # the same kills every run; set it to try others
print(f"recovery kill seed {SEED} (VOXKEY_KILL_SEED)")


def run(recording, kill: str = "", kill_at: int = 0) -> tuple[str, dict, int]:
    """Replay `recording`; if `kill` names a stage, SIGKILL it once, the moment the
    `kill_at`-th report of typing arrives (a point in the protocol, not a time: it
    falls inside the replay on any machine). Returns the typed text, what was killed,
    and how many reports of typing there were."""
    plan = {"stage": kill, "at_typed": kill_at, "killed_pid": None}
    typed = [0]

    def observe(supervisor, frame):
        if frame is None or frame.topic != "typed":
            return
        typed[0] += 1
        if kill and plan["killed_pid"] is None and typed[0] >= kill_at:
            pid = supervisor.states()[kill]["pid"]
            os.kill(pid, signal.SIGKILL)
            plan["killed_pid"] = pid

    state = replay.run(configuration.load(), str(recording), observe=observe)
    return state.text, plan, typed[0]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    mixed = tmp_path_factory.mktemp("audio") / "chat_then_dictation.wav"
    concatenate(["chat_capital.wav", "dictate_report.wav", "cmd_scratch_that.wav", "dictate_meeting.wav"], mixed)
    session = AUDIO / "session_dictation.wav"
    return {"session": (session, *run(session)[::2]), "mixed": (mixed, *run(mixed)[::2])}


@pytest.mark.parametrize("recording", ["session", "mixed"])
@pytest.mark.parametrize("stage", KILLABLE)
def test_killed_stage_loses_nothing_and_types_nothing_twice(recordings, recording, stage):
    path, undisturbed, reports = recordings[recording]
    assert undisturbed.strip() and reports >= 2, "the undisturbed run typed something"
    # Before the last report of typing: something is still on its way when the kill lands.
    kill_at = random.Random(f"{SEED}-{stage}-{recording}").randint(1, reports - 1)
    typed, plan, _ = run(path, kill=stage, kill_at=kill_at)
    print(f"seed {SEED}: killed {stage} at report of typing {kill_at} of {reports}")
    assert plan["killed_pid"] is not None, f"the replay ended before {stage} could be killed"
    assert typed == undisturbed, f"seed {SEED}: {plan}"


def test_swap_restarts_only_that_stage_and_loses_nothing(recordings):
    """`voxkey swap asr --set beam_size=1` in the middle of a replay."""
    from voxkey.swap import swap_stage

    path, undisturbed, _ = recordings["session"]
    seen = {}

    def observe(supervisor, frame):
        if frame is not None and frame.topic == "typed" and "before" not in seen:
            seen["before"] = {name: info["pid"] for name, info in supervisor.states().items()}
            seen["new_asr"] = swap_stage(supervisor.run_dir, "asr", ["beam_size=1"])
            seen["config"] = (supervisor.run_dir / "run.toml").read_text()
        elif frame is None and "before" in seen:
            seen["after"] = {name: info["pid"] for name, info in supervisor.states().items()}

    state = replay.run(configuration.load(), str(path), observe=observe)
    assert state.text == undisturbed
    changed = {name for name in seen["before"] if seen["before"][name] != seen["after"][name]}
    assert changed == {"asr"} and seen["after"]["asr"] == seen["new_asr"]
    assert "beam_size = 1" in seen["config"]
