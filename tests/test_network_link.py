"""Delivery across a real network boundary: two network namespaces joined by a veth pair
(10.77.0.1 and 10.77.0.2, test hosts of our own), a stage process in each on the real
runtime, over tcp:// with CURVE. The link is cut (`ip link set down`) for longer than
`bus.link_timeout_s` while transcripts flow, so ZeroMQ drops the connection and what
it held; once it is back, everything told is taken once, in order. The in-process rule
with every pattern of losses: tests/test_lossy_link.py."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import needs_namespaces

from bench.netns import namespaces
from bus import curve

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "link_peers.py"
COUNT = 60
EVERY_S = 0.1
CUT_S = 6.0  # twice the link timeout: the connection is given up, not merely slow
LINK_TIMEOUT_S = 3.0
DEADLINE_S = 120  # only for reporting a failure: nothing waits for it to pass


pytestmark = needs_namespaces


@pytest.fixture
def hosts():
    with namespaces() as link:
        yield link


def config_file(folder: Path, keys: Path) -> Path:
    """One host's configuration: its own run directory, the endpoints of both."""
    run_dir = folder / "run"
    run_dir.mkdir(mode=0o700, parents=True)
    path = folder / "config.toml"
    path.write_text(
        f"""[bus]
run_dir = "{run_dir}"
curve_dir = "{keys}"
heartbeat_s = 1.0
link_timeout_s = {LINK_TIMEOUT_S}

[stages.asr]
endpoint = "tcp://10.77.0.1:5601"

[stages.router]
endpoint = "tcp://10.77.0.2:5602"
"""
    )
    return path


def start(namespace: str, role: str, config: Path, out: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "VOXKEY_LINK_OUT": str(out),
        "VOXKEY_LINK_COUNT": str(COUNT),
        "VOXKEY_LINK_EVERY_S": str(EVERY_S),
    }
    log = (out / f"{role}.log").open("w")
    command = ["ip", "netns", "exec", namespace, sys.executable, str(PEERS), role, "--config", str(config)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def taken(out: Path) -> list[str]:
    path = out / "taken"
    return path.read_text().splitlines() if path.exists() else []


def wait_for(what, out: Path, describe: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not what():
        if time.monotonic() > deadline:
            logs = "\n".join((out / f"{role}.log").read_text()[-2000:] for role in ("teller", "taker"))
            pytest.fail(f"{describe} within {DEADLINE_S} s; taken {len(taken(out))} of {COUNT}\n{logs}")
        time.sleep(0.1)


def test_a_link_cut_mid_stream_loses_nothing_and_doubles_nothing(hosts, tmp_path):
    keys = curve.generate(tmp_path / "keys")
    out = tmp_path / "out"
    out.mkdir()
    sides = [
        start(hosts.brain, "taker", config_file(tmp_path / "brain", keys), out),
        start(hosts.pi, "teller", config_file(tmp_path / "pi", keys), out),
    ]
    try:
        wait_for(lambda: len(taken(out)) >= 10, out, "the first transcripts did not cross")
        hosts.cut()
        time.sleep(CUT_S)  # the outage itself: what is told meanwhile has nowhere to go
        hosts.restore()
        wait_for(lambda: (out / "teller-done.json").exists(), out, "the teller's transcripts were not all acknowledged")
    finally:
        for side in sides:
            side.terminate()
        for side in sides:
            side.wait(timeout=30)
    expected = [f"utterance {number}" for number in range(COUNT)]
    assert taken(out) == expected  # every one, once, in order
    teller, taker = (json.loads((out / f"{role}.json").read_text()) for role in ("teller", "taker"))
    print("teller", {k: v for k, v in teller.items() if not k.startswith(("sent.", "received."))})
    print("taker", {k: v for k, v in taker.items() if not k.startswith(("sent.", "received."))})
