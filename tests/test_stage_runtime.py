"""A real stage process on real sockets: bad frames are counted, and it keeps working."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bus import config as configuration
from bus import frames
from bus.peer import Peer

from conftest import REPO


def test_router_survives_garbage_and_counts_it():
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    config = configuration.load(overrides=[f'bus.run_dir="{run_dir}"', "bus.heartbeat_s=0.2"])
    config_path = run_dir / "run.toml"
    config_path.write_text(configuration.dumps(config))
    log = structlog.get_logger()
    # The test plays both neighbours of the router: the ASR it listens to, the keys that listen to it.
    fake_asr = Peer("asr", config, [], [], log)
    fake_keys = Peer("keys", config, ["router"], ["keystrokes"], log)
    router = subprocess.Popen([sys.executable, "-m", "stages.router", "--config", str(config_path)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (fake_keys.heard["router"] and fake_keys.heard["router"].ready):
            assert time.monotonic() < deadline, "router never became ready"
            fake_asr.heartbeat(True)
            fake_keys.receive(100)
        garbage = [
            [b"transcript", b"\x00\x01not msgpack", b""],
            [b"transcript"],
            [b"transcript", frames.encode(frames.Frame(frames.Transcript("x"), src="asr"))[1].replace(b"\x01", b"\x07", 1), b""],
        ]
        for parts in garbage:
            fake_asr.pub.send_multipart(parts)
        fake_asr.publish(frames.Transcript(text="still here."), utt="u1")
        typed = None
        while typed is None or fake_keys.heard["router"].counters.get("received.transcript") is None:
            assert time.monotonic() < deadline, "router stopped answering after garbage"
            frame = fake_keys.receive(100)
            if frame is not None and frame.topic == "keystrokes":
                typed = frame
        assert typed.body.text == "Still here." and typed.utt == "u1"
        counters = fake_keys.heard["router"].counters
        assert counters["rejected.bad_msgpack"] == 1
        assert counters["rejected.bad_parts"] == 1
        assert counters["rejected.bad_version"] == 1
        assert router.poll() is None
    finally:
        router.terminate()
        _, stderr = router.communicate(timeout=10)
        fake_asr.close()
        fake_keys.close()
    assert router.returncode == 0, stderr[-2000:]
    assert '"reason": "bad_msgpack"' in stderr
