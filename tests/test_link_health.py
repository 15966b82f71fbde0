"""Link health, as the user sees it: the round trip of each link, timed on heartbeats
with no clock compared across hosts (bus/peer.py), and the stages another host runs,
shown by `voxkey status` and `voxkey doctor` and watched by `voxkey up` (voxkey/remote.py,
voxkey/status.py). In-process: real heartbeats, encoded and decoded, between Accounts."""

import time

import pytest
from harness import Harness

from bus import config as configuration
from bus import curve
from bus import frames as wire
from bus.control import PeerLink, StageStatus
from bus.frames import Frame, Heartbeat
from bus.peer import Accounts
from bus.records import plain, typed
from bus.wiring import STAGES
from stages.router.stage import Router
from voxkey import doctor, remote
from voxkey.serve import Progress
from voxkey.status import Live, Outages, render

BRAIN = remote.RemoteStage("asr", "brain", "10.77.0.2")


def accounts(name: str, *listen: str) -> Accounts:
    return Accounts(name, list(listen), [], log=None)


def carry(sender: Accounts, receiver: Accounts, sent_at: float, heard_at: float) -> Heartbeat:
    """`sender` beats at `sent_at` on its clock; it reaches `receiver` at `heard_at` on its own."""
    frame = Frame(body=sender.beat(True, now=sent_at), src=sender.name)
    sender.number(frame)
    receiver.take(wire.decode(wire.encode(frame)), now=heard_at)
    return frame.body


def test_the_round_trip_is_timed_on_heartbeats_whatever_each_host_s_clock_says():
    router, asr = accounts("router", "asr"), accounts("asr", "router")
    carry(router, asr, sent_at=100.0, heard_at=5000.0)  # asr's clock is nowhere near the router's
    back = carry(asr, router, sent_at=5000.4, heard_at=100.5)  # held 0.4 s before it beat
    assert back.echo == {"router": pytest.approx(100.4)}, "the router's time given back, plus the time held"
    assert router.round_trip_s == {"asr": pytest.approx(0.1)}, "0.5 s there and back, less the 0.4 s held"
    carry(router, asr, sent_at=100.7, heard_at=5000.9)
    assert asr.round_trip_s == {"router": pytest.approx(0.3)}, "each end times its own round trip"
    assert router.beat(True, now=101.0).round_trip_ms == {"asr": pytest.approx(100.0)}
    assert router.links(101.0) == {"asr": PeerLink(ready=True, heard_s=pytest.approx(0.5), round_trip_ms=100.0)}


def test_a_heartbeat_timed_by_no_one_times_nothing():
    router, asr = accounts("router", "asr"), accounts("asr", "router")
    untimed = Frame(body=Heartbeat(ready=True, pid=3), src="asr")  # `at` 0: a time nobody took
    router.take(untimed, now=50.0)
    assert router.echoes(51.0) == {} and router.round_trip_s == {}
    asr.take(Frame(body=Heartbeat(ready=True, pid=4, echo={"vad": 40.0}), src="router"), now=60.0)
    assert asr.round_trip_s == {}, "an echo of another stage's time is not ours"
    carry(router, asr, sent_at=time.monotonic(), heard_at=time.monotonic())  # the clock's own times
    carry(asr, router, sent_at=time.monotonic(), heard_at=time.monotonic())
    assert 0 <= router.round_trip_s["asr"] < 1


def test_a_stage_tells_in_its_status_how_each_peer_it_hears_is(tmp_path):
    router = Harness(Router, tmp_path)
    asr = accounts("asr", "router")
    carry(asr, router.stage.peer, sent_at=7.0, heard_at=time.monotonic())
    said = typed(StageStatus, router.stage.on_control("status", {}))
    [(name, link)] = said.links.items()
    assert (name, link.ready, link.round_trip_ms) == ("asr", True, None), "heard, its round trip not timed yet"
    assert 0 <= link.heard_s < 1


def status_of(**links: PeerLink) -> StageStatus:
    return typed(StageStatus, plain(StageStatus("idle", True, 9, links=links)))


def test_a_remote_stage_is_shown_as_the_stages_here_that_listen_to_it_hear_it():
    away = {"asr": BRAIN}
    fresh = PeerLink(True, 0.4, 1.3)
    answers = {"vad": status_of(asr=PeerLink(True, 0.1)), "router": status_of(asr=fresh)}
    [report] = remote.reports(away, answers, period_s=5.0).values()
    assert report.line == "asr on brain (10.77.0.2): ready, heard 0.4 s ago, round trip 1.3 ms", "timed, and fresh"
    assert report.verdict == "ok"
    loading = remote.judge(BRAIN, PeerLink(False, 2.0), listening=True, period_s=5.0)
    assert (loading.line, loading.verdict) == (
        "asr on brain (10.77.0.2): not ready, heard 2.0 s ago, round trip not timed yet",
        "warn",
    )
    gone = remote.judge(BRAIN, PeerLink(True, 16.0, 1.3), listening=True, period_s=5.0)
    assert gone.line == (
        "asr on brain (10.77.0.2): not heard for 16 s: is `voxkey serve` running there, and the network up?"
    )
    assert gone.verdict == "FAIL" and "ping 10.77.0.2" in gone.fix
    assert remote.judge(BRAIN, None, listening=True, period_s=5.0).verdict == "FAIL"
    assert remote.judge(BRAIN, None, listening=False, period_s=5.0).verdict == "warn", "voxkey is not running here"
    keyboard = {stage: remote.RemoteStage(stage, "laptop", "laptop") for stage in ("capture", "vad", "router", "keys")}
    capture = remote.reports(keyboard, {}, 5.0)["capture"]  # seen from brain: vad hears it, there
    assert (capture.line, capture.verdict) == ("capture on laptop: no stage here listens to it", "ok")


def test_status_shows_a_remote_stage_in_place_of_its_row():
    answers = {name: StageStatus("idle", True, 10) for name in ("capture", "vad", "router", "keys")}
    shown = render(answers, {}, now_ns=0, remote={"asr": "asr on brain (10.77.0.2): ready"}).splitlines()
    rows = shown[shown.index("stages:") + 1 :]
    assert rows[2] == "  asr on brain (10.77.0.2): ready" and rows[3].startswith("  router    RUNNING")
    assert len(rows) == 7


@pytest.fixture
def two_hosts(tmp_path):
    """This host, laptop, paired with brain, which runs asr, instruct and thinking."""
    keys = curve.generate(tmp_path / "keys", "laptop", "10.77.0.1")
    brain = curve.load(curve.generate(tmp_path / "brain", "brain", "10.77.0.2"))
    curve.pair(keys, "brain", "10.77.0.2", brain.public.decode())
    overrides = [f'bus.run_dir="{tmp_path / "run"}"', f'bus.curve_dir="{keys}"', 'placement.host="brain"']
    return configuration.load(overrides=overrides)


def test_the_stages_another_host_runs_are_found_in_the_placement(two_hosts, tmp_path):
    assert remote.remote_stages(two_hosts) == {
        stage: remote.RemoteStage(stage, "brain", "10.77.0.2") for stage in ("asr", "instruct", "thinking")
    }
    assert remote.listeners_here(remote.remote_stages(two_hosts)) == ["vad", "router"]
    alone = configuration.load(overrides=[f'bus.run_dir="{tmp_path / "run"}"', f'bus.curve_dir="{tmp_path / "keys"}"'])
    assert remote.remote_stages(alone) == {}, "a pipeline on one host has none"


def test_doctor_tells_of_each_remote_stage_and_nothing_on_one_host(two_hosts, tmp_path):
    checks = doctor.check_remote(two_hosts)
    assert [(check.name, check.verdict) for check in checks] == [
        ("link asr", "warn"),
        ("link instruct", "warn"),
        ("link thinking", "warn"),
    ], "nothing here runs to hear them"
    assert checks[0].detail == "asr on brain (10.77.0.2): not known, nothing here that listens to it runs"
    assert doctor.check_remote(configuration.load(overrides=[f'bus.run_dir="{tmp_path / "run"}"'])) == []


def test_a_remote_stage_that_goes_unheard_is_told_once_and_once_again_when_heard():
    outages = Outages({"asr": BRAIN}, period_s=5.0)
    outages.heard("asr", 1.0)
    outages.heard("router", 30.0)  # a stage here: not watched
    assert outages.check(1.5) == [] and outages.check(16.0) == [], "three periods may pass unheard"
    [gone] = outages.check(17.0)
    assert gone.message == (
        "asr on brain (10.77.0.2) not heard for 16 s: is `voxkey serve` running there, and the network up?"
    )
    assert gone.desktop and outages.check(18.0) == [] and outages.check(60.0) == [], "once per outage"
    outages.heard("asr", 61.0)
    [back] = outages.check(61.2)
    assert back.message == "asr on brain (10.77.0.2) heard again, after 60 s"
    assert outages.check(62.0) == []
    assert [event.message for event in outages.check(77.0)][0].startswith("asr on brain (10.77.0.2) not heard for 16 s")


def test_a_remote_stage_never_heard_is_told_of_too():
    outages = Outages({"asr": BRAIN}, period_s=5.0)
    assert outages.check(100.0) == []  # watching begins
    [never] = outages.check(116.0)
    assert never.message.startswith("asr on brain (10.77.0.2) not heard for 16 s")


def test_a_remote_stage_never_heard_while_its_host_s_others_are_is_told_as_placements_that_differ():
    brain = {stage: remote.RemoteStage(stage, "brain", "10.77.0.2") for stage in ("asr", "instruct", "thinking")}
    outages = Outages(brain, period_s=5.0)
    outages.check(100.0)  # watching begins
    for stage in ("asr", "instruct"):  # `voxkey serve asr instruct` there: thinking never comes
        outages.heard(stage, 115.0)
    [differ] = outages.check(116.0)
    assert differ.message == (
        "thinking on brain (10.77.0.2) not heard for 16 s: asr, instruct there are heard: is it still loading, or "
        "does `voxkey serve` run other stages there? placement.stages must be the same on both hosts "
        "(here: asr, instruct, thinking)"
    )
    # Heard once and then lost is the link or the stage, not the placement.
    outages.heard("thinking", 117.0)
    [back] = outages.check(118.0)
    assert back.message == "thinking on brain (10.77.0.2) heard again, after 17 s"
    outages.heard("asr", 130.0)
    outages.heard("instruct", 130.0)
    [lost] = outages.check(133.0)
    assert lost.message.startswith("thinking on brain (10.77.0.2) not heard for 16 s: is `voxkey serve` running")
    # And `status`/`doctor`, from what the stages here heard.
    answers = {"router": status_of(asr=PeerLink(True, 0.2), instruct=PeerLink(True, 0.3)), "vad": status_of()}
    reports = remote.reports(brain, answers, period_s=5.0)
    assert reports["instruct"].verdict == "ok" and reports["thinking"].verdict == "FAIL"
    assert reports["thinking"].line == (
        "thinking on brain (10.77.0.2): not heard here: asr, instruct there are heard: is it still loading, or "
        "does `voxkey serve` run other stages there? placement.stages must be the same on both hosts "
        "(here: asr, instruct, thinking)"
    )


def test_the_live_view_watches_remote_stages_through_their_heartbeats():
    live = Live(outages=Outages({"asr": BRAIN}, period_s=5.0))
    live.on_frame(Frame(Heartbeat(ready=True, pid=5), "asr"))
    assert live.check_links(time.monotonic()) == []
    [gone] = live.check_links(time.monotonic() + 16)
    assert "not heard for" in gone.message and "asr UNHEARD" in live.line()
    live.on_frame(Frame(Heartbeat(ready=True, pid=5), "asr"))
    [back] = live.check_links(time.monotonic())
    assert "heard again" in back.message and "UNHEARD" not in live.line()
    assert Live().check_links(time.monotonic() + 1000) == [], "no stage on another host: nothing to watch"


def test_the_serving_host_tells_only_of_a_keyboard_host_it_heard_and_lost():
    pi_vad = remote.RemoteStage("vad", "pi", "10.77.0.1")
    outages = Outages({"vad": pi_vad}, period_s=5.0, ask="is `voxkey up` running there?", never_heard_is_out=False)
    assert outages.check(100.0) == [] and outages.check(500.0) == [], "waiting for the Pi is no outage"
    outages.heard("vad", 501.0)
    [gone] = outages.check(517.0)
    assert gone.message == "vad on pi (10.77.0.1) not heard for 16 s: is `voxkey up` running there?"


def test_serve_says_loaded_then_ready_once_each():
    progress = Progress(("asr", "instruct"), "pi (10.77.0.1)", Outages())
    loading, loaded = Heartbeat(ready=False, pid=1, state="starting"), Heartbeat(ready=False, pid=1, state="running")
    assert progress.on_heartbeat("asr", loaded, 1.0) == [], "instruct not heard yet"
    assert progress.on_heartbeat("instruct", loading, 1.0) == []
    assert progress.on_heartbeat("instruct", loaded, 2.0) == [
        "serving asr, instruct for pi (10.77.0.1): loaded, waiting for it"
    ]
    assert progress.on_heartbeat("asr", Heartbeat(ready=True, pid=1, state="running"), 3.0) == []
    assert progress.on_heartbeat("instruct", Heartbeat(ready=True, pid=1, state="running"), 3.0) == [
        "serving asr, instruct for pi (10.77.0.1): ready"
    ]
    assert progress.on_heartbeat("instruct", Heartbeat(ready=True, pid=1, state="running"), 4.0) == []


def test_doctor_checks_only_the_models_and_memory_of_the_stages_here(two_hosts, tmp_path):
    assert doctor.stages_here(two_hosts) == ("capture", "vad", "router", "keys")
    checks, sizes = doctor.check_models(two_hosts, verify=False, here=doctor.stages_here(two_hosts))
    assert checks == [] and sizes == {}, "asr, instruct and thinking are the brain's"
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "run.toml").write_text('[placement]\nhost = "brain"\nstages = ["instruct"]\n')
    started_so = configuration.load(overrides=[f'bus.run_dir="{run_dir}"', f'bus.curve_dir="{tmp_path / "keys"}"'])
    assert remote.as_running(started_so, run_dir)["placement"]["stages"] == ["instruct"]
    assert "asr" in doctor.stages_here(started_so), "as the voxkey running here was started"
    assert remote.as_running(two_hosts, run_dir) is two_hosts, "a placement given wins"
    two_hosts["placement"]["fallback"] = True
    assert doctor.stages_here(two_hosts) == STAGES, "this host stands in for the brain: its models are needed here"
