"""Real stage processes on real sockets, the test playing their neighbours."""

import time

import pytest
from conftest import LoneStage, voxkey

from bus import frames


def test_router_survives_garbage_and_counts_it():
    router = LoneStage("router", ["asr", "keys"])
    try:
        asr = router.upstream["asr"]
        valid_header = frames.encode(frames.Frame(frames.Transcript("x"), src="asr"))[1]
        for parts in (
            [b"transcript", b"\x00\x01not msgpack", b""],
            [b"transcript"],
            [b"transcript", valid_header.replace(b"\xa1v\x02", b"\xa1v\x07", 1), b""],
        ):
            asr.pub.send_multipart(parts)
        router.send("asr", frames.Transcript(text="still here."), utt="u1", key="u1")
        [typed] = router.frames(lambda f: f.topic == "keystrokes")
        assert typed.body.text == "Still here." and typed.utt == "u1"
        deadline = time.monotonic() + 10
        while "received.transcript" not in router.beat().counters:
            assert time.monotonic() < deadline
            router.downstream.receive(100)
        counters = router.beat().counters
        assert (counters["rejected.bad_msgpack"], counters["rejected.bad_parts"], counters["rejected.bad_version"]) == (
            1,
            1,
            1,
        )
        assert router.process.poll() is None
    finally:
        stderr = router.close()
    assert '"reason": "bad_msgpack"' in stderr


def test_voxkey_mode_sets_the_sticky_mode_of_a_running_router():
    router = LoneStage("router", ["asr", "thinking"])
    try:
        result = voxkey("mode", "converse", "--set", f"bus.run_dir={router.run_dir}")
        assert result.returncode == 0 and "mode converse" in result.stderr
        router.send("asr", frames.Transcript(text="What is 2 plus 2?"), utt="u1", key="u1")
        request = router.frames(lambda f: f.topic == "request")[-1]
        assert (request.body.mode, request.body.text) == ("converse", "What is 2 plus 2?")
        refused = voxkey("mode", "shout", "--set", f"bus.run_dir={router.run_dir}")
        assert refused.returncode != 0 and "invalid choice" in refused.stderr
    finally:
        router.close()


def test_the_command_reads_the_file_voxkey_config_names(tmp_path):
    """$VOXKEY_CONFIG is --config's default, for the command as for the stages."""
    import os

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir(mode=0o700)
    (tmp_path / "voxkey.toml").write_text(f'[bus]\nrun_dir = "{run_dir}"\n')
    result = voxkey("mode", "chat", env={**os.environ, "VOXKEY_CONFIG": str(tmp_path / "voxkey.toml")})
    assert result.returncode != 0 and f"no running voxkey in {run_dir}:" in result.stderr


def test_voxkey_mode_without_a_running_voxkey_says_so(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    result = voxkey("mode", "chat", "--set", f"bus.run_dir={run_dir}")
    assert result.returncode != 0 and "voxkey up" in result.stderr


def test_an_idle_stage_sleeps_until_woken_yet_answers_at_once_and_stops_on_sigterm():
    """Nothing in the loop polls on a timer: with the next heartbeat ten minutes away
    and its neighbours silent, the router still becomes ready and is heard by all (a
    change of readiness, a peer heard anew and a subscriber that joins make it beat at
    once: even a mere listener, which it does not hear, as `listener` and a late one
    here), answers a control request (the control socket wakes its wait) and stops on
    SIGTERM (the signal's wakeup pipe does)."""
    import structlog
    import zmq

    from bus import sockets
    from bus.asking import ControlError, ask, ask_each
    from bus.peer import Peer

    router = LoneStage("router", ["asr", "keys"], "bus.heartbeat_s=600")
    late = None
    try:
        status = ask(router.config, "router", "status", {}, timeout_s=10)
        assert status["pid"] == router.process.pid and status["ready"] is True
        assert status["counters"]["sent.heartbeat"] >= 2, "counters as they are now"
        # All asked at once: one answers, one is not running, one never answers.
        mute = zmq.Context.instance().socket(zmq.REP)
        mute.bind(sockets.control_endpoint(router.config, "vad"))
        try:
            each = ask_each(router.config, ["router", "asr", "vad"], "status", {}, timeout_s=0.5)
        finally:
            mute.close(linger=0)
        assert each["router"]["pid"] == router.process.pid
        assert isinstance(each["asr"], ControlError) and "stage asr is not running" in str(each["asr"])
        assert isinstance(each["vad"], ControlError) and "stage vad did not answer in 0.5 s" in str(each["vad"])
        late = Peer("late", router.config, ["router"], [], structlog.get_logger())
        deadline = time.monotonic() + 30
        while (late.heard["router"] or frames.Heartbeat(False, 0)).pid != router.process.pid:
            assert time.monotonic() < deadline, "a subscriber that joins is not told who the stage is"
            late.receive(100)
    finally:
        if late is not None:
            late.close()
        stderr = router.close()  # SIGTERM; a stage still running after 15 s fails here
    assert '"stopping"' in stderr


def test_the_commands_end_of_the_control_socket_speaks_the_stages_records():
    """bus/asking.py writes and reads control.py's records as plain maps, without them."""
    from bus import asking
    from bus.control import ControlReply, ControlRequest
    from bus.records import plain

    assert asking.request("listen", {"how": "on"}) == plain(ControlRequest("listen", {"how": "on"}))
    assert asking.reply_message("capture", plain(ControlReply(True, "listening"))) == "listening"
    with pytest.raises(asking.ControlError, match="^capture: no such command$"):
        asking.reply_message("capture", plain(ControlReply(False, "no such\ncommand")))
    for wrong in ({"ok": "yes", "message": ""}, {"ok": True}, ["ok"]):
        with pytest.raises(asking.ControlError, match="^capture: not a reply"):
            asking.reply_message("capture", wrong)
