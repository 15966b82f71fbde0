"""The Pi as the keyboard, another machine as the brain, across a real network boundary:
two network namespaces on this machine (bench/netns.py), each with its own
configuration and run directory, paired with `voxkey pair` as a user would. The brain
runs `voxkey serve` (asr, instruct, thinking), the Pi `voxkey replay --remote brain`:
every stage a process under each host's own supervisord, over tcp:// with CURVE.

What is asserted is what voxkey owns: the Pi types what a local run types; a link cut
mid-utterance loses nothing and doubles nothing; a host with another key is refused;
what crosses the link is unreadable. The wiring in-process: tests/test_placement.py."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AUDIO, MANIFEST, assert_said, needs_namespaces

from bench.netns import BRAIN_ADDRESS, Failed, Machine, serving
from bus import curve
from bus.config import load
from bus.wiring import STAGES

pytestmark = needs_namespaces

TESTS = Path(__file__).parent
ASR_PORT = load()["bus"]["port"] + STAGES.index("asr")
# Into the recording, and for how long: twice bus.link_timeout_s, so that ZeroMQ gives
# the connection up with what it held. Where the cut falls is not what the outcome rests on.
CUT_AFTER_S, CUT_S = 4.0, 6.0
DEADLINE_S = 300  # only for reporting a failure: nothing waits for it to pass


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The Pi and the brain, paired with each other; the brain serving. The references,
    what the Pi types with every stage its own, are made once."""
    with serving(tmp_path_factory.mktemp("two_hosts")) as (link, pi, brain):
        assert "serving asr, instruct, thinking for pi (10.77.0.1): loaded" in brain.log("serve.log")
        yield link, pi, brain


def typed_on_one_host(pi: Machine, name: str) -> str:
    return pi.voxkey("replay", AUDIO / name).stdout


def kept_dir(stderr: str) -> Path:
    return Path(stderr.split("logs kept in ")[-1].split()[0])


def counters_at_stop(run_dir: Path, stage: str) -> dict:
    lines = (run_dir / f"{stage}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if '"stopping"' in line][-1]["counters"]


def wait_for(what, describe) -> None:
    """Until `what()`; failed after DEADLINE_S, with `describe` (or what it returns then)."""
    deadline = time.monotonic() + DEADLINE_S
    while not what():
        if time.monotonic() > deadline:
            pytest.fail(f"{describe() if callable(describe) else describe} within {DEADLINE_S} s")
        time.sleep(0.1)


def test_the_pi_types_what_a_local_run_types_and_the_link_shows_nothing_readable(two):
    link, pi, _ = two
    sniffed = pi.folder / "sniffed"
    sniffer = subprocess.Popen(pi.inside(sys.executable, TESTS / "sniff.py", link.pi_end, sniffed))
    try:
        wait_for(lambda: Path(f"{sniffed}.ready").exists(), "the sniffer did not start")
        remote = pi.voxkey("replay", AUDIO / "jfk.flac", "--remote", "brain", "--keep")
    finally:
        sniffer.terminate()
        sniffer.wait(timeout=30)
    assert_said(remote.stdout, MANIFEST["jfk.flac"]["text"])
    assert remote.stdout == typed_on_one_host(pi, "jfk.flac")
    kept = kept_dir(remote.stderr)
    assert (kept / "vad.log").exists() and not (kept / "asr.log").exists()  # asr ran on the brain, not here

    seen = sniffed.read_bytes()
    assert b"CURVE" in seen and len(seen) > 100_000  # ZeroMQ's greeting names its mechanism; the speech crossed
    # Six characters or more: three random bytes match some word by chance in a megabyte.
    for plain in (b"american", b"country", b"transcript", b"speech", b"heartbeat", b"jfk@00"):
        assert plain not in seen.lower(), f"{plain!r} crossed the link readable"


def test_a_link_cut_mid_utterance_loses_nothing_and_doubles_nothing(two):
    link, pi, _ = two
    reference = typed_on_one_host(pi, "session_dictation.wav")
    recording = AUDIO / "session_dictation.wav"
    replaying = pi.start("replay", recording, "--realtime", "--remote", "brain", "--keep", log="cut.log")
    try:
        pi.wait_for_log("cut.log", "ready: replaying")
        time.sleep(CUT_AFTER_S)
        link.cut()
        time.sleep(CUT_S)  # the outage itself: what is sent meanwhile is lost on the way
        link.restore()
        typed, _ = replaying.communicate(timeout=DEADLINE_S)
    finally:
        link.restore()
        replaying.kill()
    assert replaying.returncode == 0, pi.log("cut.log")[-3000:]
    assert typed == reference
    vad, router = (counters_at_stop(kept_dir(pi.log("cut.log")), stage) for stage in ("vad", "router"))
    # The cut did cost something: the brain's heartbeats sent meanwhile (one each 5 s at
    # least) never came; speech cut meanwhile went again (vad's resent_after_loss).
    assert router.get("lost", 0) > 0, (vad, router)
    first = MANIFEST["session_dictation.wav"]["text"][0]
    assert_said(typed, f"{first} {first}")  # the third utterance said, then scratched


def test_with_a_fallback_the_pi_types_on_with_its_own_stages_once_the_brain_is_gone(two):
    link, pi, _ = two
    reference = typed_on_one_host(pi, "session_dictation.wav")
    typed = pi.folder / "typed.txt"
    recording = [f"stages.capture.source={AUDIO / 'session_dictation.wav'}", "stages.capture.realtime=true"]
    # The stand-ins take over some 20 s after the brain went (three heartbeats unheard,
    # then loading): keys would hold speech that late (stages.keys.max_age_s, see
    # tests/test_held.py). Here it is typed whatever its age, to compare it whole.
    late = ("placement.fallback=true", "stages.keys.max_age_s=0")
    settings = [item for setting in (*late, *recording) for item in ("--set", setting)]
    up = pi.start("up", "--remote", "brain", "--sink", f"file:{typed}", *settings, log="up.log")
    try:
        pi.wait_for_log("up.log", "ready: speak")
        timed = re.compile(r"asr on brain \(10\.77\.0\.2\): ready, heard [\d.]+ s ago, round trip [\d.]+ ms")
        wait_for(lambda: timed.search(status_of(pi)), lambda: f"no round trip timed: {status_of(pi)}")
        assert "thinking on brain (10.77.0.2): ready" in status_of(pi)
        time.sleep(CUT_AFTER_S)
        link.cut()  # for good: the brain is gone
        pi.wait_for_log("up.log", "typing with this host's asr, instruct, thinking until voxkey up starts again")
        so_far = lambda: typed.read_text() if typed.exists() else ""  # noqa: E731
        told = lambda: f"typed whole: {so_far()!r}\n{pi.log('up.log')[-3000:]}"  # noqa: E731
        wait_for(lambda: len(so_far()) >= len(reference), told)
        assert typed.read_text() == reference
        assert "asr on brain (10.77.0.2) not heard for" in pi.log("up.log")
    finally:
        link.restore()
        up.send_signal(signal.SIGINT)
        up.wait(timeout=120)
    assert up.returncode == 0, pi.log("up.log")[-3000:]


def status_of(pi: Machine) -> str:
    """`voxkey status` on the Pi: a line per stage, the brain's as the Pi's stages hear them."""
    try:
        return pi.voxkey("status", timeout=60).stdout
    except Failed as failed:
        return str(failed)


def test_a_host_with_another_key_is_refused(two):
    _, pi, brain = two
    key = curve.load(brain.keys_dir).public.decode()
    knock = subprocess.run(
        pi.inside(sys.executable, TESTS / "stranger.py", f"tcp://{BRAIN_ADDRESS}:{ASR_PORT}", key),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert knock.stdout.strip() == "refused", knock.stderr
