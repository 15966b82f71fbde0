"""Stages on two hosts, in-process: the wiring both hosts derive from one description
(bus/placement.py), the keys each host trusts (bus/curve.py), `voxkey pair`, and the
CURVE handshakes that keep a host out of what it is not meant to hear or say, on real
ZeroMQ sockets over tcp:// on this machine. Across two network namespaces, with every
stage a process: tests/test_two_hosts.py."""

import random
import shlex

import pytest
import zmq
import zmq.utils.monitor
from conftest import voxkey

from bus import config as configuration
from bus import curve, placement, sockets, wiring
from bus.config import ConfigError
from bus.curve import Host, Keys
from voxkey import fallback, pair

PI, BRAIN = ("pi", "10.77.0.1"), ("brain", "10.77.0.2")


def paired(tmp_path):
    """Key directories for the Pi and the brain, each trusting the other."""
    directories = {}
    for name, address in (PI, BRAIN):
        directories[name] = curve.generate(tmp_path / name, name, address)
    for name, other in (("pi", "brain"), ("brain", "pi")):
        host = curve.load(directories[other]).host(other)
        curve.pair(directories[name], host.name, host.address, host.key.decode())
    return {name: curve.load(directory) for name, directory in directories.items()}


def placed(keys: curve.Keys, host: str = "brain", stages=("asr", "instruct", "thinking")) -> dict:
    config = configuration.load()
    config["bus"]["curve_dir"] = str(keys.directory)
    config["placement"].update(host=host, stages=list(stages))
    return config


def test_both_hosts_derive_the_same_wiring_from_one_description(tmp_path):
    keys = paired(tmp_path)
    pi, brain = placed(keys["pi"]), placed(keys["brain"])
    hosts = placement.where(pi, keys["pi"])
    assert {stage for stage in wiring.STAGES if hosts[stage] == "brain"} == {"asr", "instruct", "thinking"}
    assert hosts[wiring.CLI] == "pi"
    assert {s: h for s, h in placement.where(brain, keys["brain"]).items() if s != wiring.CLI} == {
        s: h for s, h in hosts.items() if s != wiring.CLI
    }
    for stage in wiring.STAGES:
        assert placement.endpoint(pi, stage, keys["pi"]) == placement.endpoint(brain, stage, keys["brain"]), stage
    assert placement.stages_here(pi) == ("capture", "vad", "router", "keys")
    assert placement.stages_here(brain) == ("asr", "instruct", "thinking")


def test_only_a_stage_heard_across_the_link_publishes_on_tcp(tmp_path):
    keys = paired(tmp_path)["pi"]
    config = placed(keys)
    port = config["bus"]["port"]
    endpoints = {stage: placement.endpoint(config, stage, keys) for stage in wiring.STAGES}
    assert endpoints["capture"] is None  # vad, its only listener, is on the Pi: ipc://
    assert endpoints["vad"] == f"tcp://10.77.0.1:{port + wiring.STAGES.index('vad')}"
    assert endpoints["asr"] == f"tcp://10.77.0.2:{port + wiring.STAGES.index('asr')}"
    assert sockets.endpoint(config, "capture", keys).startswith("ipc://")
    config["stages"]["asr"]["endpoint"] = "tcp://10.77.0.2:6000"  # set by hand: it wins
    assert placement.endpoint(config, "asr", keys) == "tcp://10.77.0.2:6000"


def test_a_publisher_lets_in_only_the_hosts_of_the_stages_that_listen_to_it(tmp_path):
    hosts = placement.where(placed(paired(tmp_path)["pi"]), paired(tmp_path / "again")["pi"])
    assert placement.audience(hosts, "capture") == {"pi"}  # the audio stays with vad
    assert placement.audience(hosts, "vad") == {"pi", "brain"}  # asr hears the speech
    assert placement.audience(hosts, "keys") == {"pi"}


def test_a_stage_that_must_stay_with_the_user_cannot_be_placed_elsewhere(tmp_path):
    keys = paired(tmp_path)["pi"]
    for stage in ("keys", "capture", "whisper"):
        with pytest.raises(ConfigError, match=f"placement.stages: '{stage}' cannot run on another host"):
            placement.where(placed(keys, stages=("asr", stage)), keys)


def test_a_host_not_paired_is_one_line_saying_how_to_pair_it(tmp_path):
    keys = paired(tmp_path)["pi"]
    with pytest.raises(ConfigError, match="no host 'desktop' is paired.*run `voxkey pair` on desktop") as raised:
        placement.where(placed(keys, host="desktop"), keys)
    assert "\n" not in str(raised.value)
    config = configuration.load()
    config["placement"]["host"] = "brain"
    with pytest.raises(ConfigError, match="need CURVE keys: run `voxkey pair` on both hosts"):
        placement.keys_of(config)  # no key directory: given none, and `voxkey pair` never ran


def test_a_pipeline_on_one_host_keeps_its_private_sockets(tmp_path):
    config = configuration.load()
    config["bus"]["run_dir"] = str(tmp_path)
    assert placement.keys_of(config) is None
    assert placement.stages_here(config) == wiring.STAGES
    assert all(sockets.endpoint(config, stage).startswith("ipc://") for stage in wiring.STAGES)


# --- voxkey pair -----------------------------------------------------------------------


def pair_command(directory, *args):
    result = voxkey("pair", "--set", f"bus.curve_dir={directory}", *args, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_typed(line: str) -> list[str]:
    """The arguments a shell gives `voxkey pair` for a line pasted whole."""
    command, subcommand, *args = shlex.split(line)
    assert (command, subcommand) == ("voxkey", "pair"), line
    return args


def test_pair_prints_the_line_to_run_on_the_other_host_and_that_line_trusts_it(tmp_path):
    shown = pair_command(tmp_path / "pi", "--name", "pi", "--address", "10.77.0.1")
    line = shown.splitlines()[-1].strip()
    assert line.startswith("voxkey pair pi 10.77.0.1 -- '")
    assert curve.load(tmp_path / "pi").secret.decode() not in shown  # only the public key is ever shown
    pair_command(tmp_path / "brain", "--name", "brain", "--address", "10.77.0.2")
    told = pair_command(tmp_path / "brain", *as_typed(line))
    assert "pi at 10.77.0.1 is paired with brain" in told
    trusted = curve.load(tmp_path / "brain").host("pi")
    assert trusted.key == curve.load(tmp_path / "pi").public and trusted.address == "10.77.0.1"
    again = pair_command(tmp_path / "pi")  # the same keys, not new ones
    assert again.splitlines()[-1].strip() == line


def test_the_printed_line_pairs_a_host_whose_key_begins_with_a_dash(tmp_path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    generator = random.Random(seed)
    while not (public := zmq.utils.z85.encode(generator.randbytes(32)).decode()).startswith("-"):
        pass  # any 32 bytes make a public key as far as pairing can tell: the peer's handshake checks it
    pair_command(tmp_path / "brain", "--name", "brain", "--address", "10.77.0.2")
    dashed = Keys(tmp_path / "pi", "pi", public.encode(), b"", {"pi": Host("pi", "10.77.0.1", public.encode())})
    told = pair_command(tmp_path / "brain", *as_typed(pair.pair_line(dashed)))
    assert "pi at 10.77.0.1 is paired with brain" in told
    assert curve.load(tmp_path / "brain").host("pi").key == public.encode()


def test_pair_refuses_a_key_cut_short_in_one_line_and_keeps_what_it_trusts(tmp_path):
    pair_command(tmp_path / "pi", "--name", "pi", "--address", "10.77.0.1")
    before = (tmp_path / "pi" / curve.HOSTS).read_text()
    result = voxkey("pair", "brain", "10.77.0.2", "abc", "--set", f"bus.curve_dir={tmp_path / 'pi'}", timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "is not a CURVE public key" in result.stderr and "copy it whole" in result.stderr
    assert (tmp_path / "pi" / curve.HOSTS).read_text() == before


# --- the handshakes, on real sockets ----------------------------------------------------


def handshake(publisher_keys, audience, subscriber_keys, server_host, server_port):
    """A tcp:// publisher with `publisher_keys` letting in `audience`, and a subscriber
    with `subscriber_keys` expecting the key of `server_host`: the subscriber's first
    handshake event, and whether a frame sent after it got through."""
    context = zmq.Context()
    address = f"tcp://127.0.0.1:{server_port}"
    publisher = sockets.publisher(context, address, publisher_keys, 0, audience)
    subscriber = sockets.subscriber(context, {address: server_host}, [""], subscriber_keys)
    monitor = subscriber.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH  # the publisher refused our key
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL  # the publisher could not read us: it is not who we expect
    )
    try:
        assert monitor.poll(30_000), "no handshake within 30 s"
        event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
        got = None
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            assert publisher.poll(30_000), "the subscription never reached the publisher"
            publisher.recv()
            publisher.send(b"said")
            got = subscriber.recv() if subscriber.poll(30_000) else None
        return event, got
    finally:
        subscriber.disable_monitor()
        monitor.close(linger=0)
        for socket in (subscriber, publisher):
            socket.close(linger=0)
        context.term()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_host_in_the_audience_is_let_in(tmp_path):
    keys = paired(tmp_path)
    event, got = handshake(keys["pi"], {"brain"}, keys["brain"], "pi", free_port())
    assert (event, got) == (zmq.EVENT_HANDSHAKE_SUCCEEDED, b"said")


def test_a_paired_host_outside_the_audience_is_refused(tmp_path):
    keys = paired(tmp_path)  # the brain is trusted, but capture's audio is for vad's host only
    event, got = handshake(keys["pi"], set(), keys["brain"], "pi", free_port())
    assert (event, got) == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, None)


def test_a_host_with_another_key_is_refused(tmp_path):
    keys = paired(tmp_path)
    stranger = curve.load(curve.generate(tmp_path / "stranger", "brain", "10.77.0.2"))  # the name, not the key
    curve.pair(stranger.directory, "pi", "10.77.0.1", keys["pi"].public.decode())
    event, got = handshake(keys["pi"], {"brain"}, curve.load(stranger.directory), "pi", free_port())
    assert (event, got) == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, None)


def test_a_publisher_posing_as_another_host_is_not_believed(tmp_path):
    keys = paired(tmp_path)  # the brain poses as the Pi's vad: its key is not the Pi's
    event, got = handshake(keys["brain"], {"pi"}, keys["pi"], "pi", free_port())
    assert (event, got) == (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, None)


def test_a_fallback_keeps_the_endpoints_here_and_brings_the_other_host_s_stages_home(tmp_path):
    keys = paired(tmp_path)["pi"]
    config = placed(keys)
    config["bus"]["run_dir"] = str(tmp_path / "run")
    alone = fallback.local_config(config)
    assert placement.stages_here(alone) == wiring.STAGES
    for stage in ("capture", "vad", "router", "keys"):  # the microphone's audio goes on unbroken
        assert sockets.endpoint(alone, stage, keys) == sockets.endpoint(config, stage, keys), stage
    assert sockets.endpoint(alone, "vad", keys).startswith("tcp://10.77.0.1:")
    assert sockets.endpoint(alone, "asr", keys) == f"ipc://{tmp_path / 'run' / 'asr'}.sock"
    assert fallback.to_restart(config) == ("vad", "router"), "they listen to asr and the models"
    assert placement.audience(placement.where(alone, keys), "vad") == {"pi"}, "the brain is let in no more"
    assert config["placement"]["host"] == "brain", "the configuration it came from is untouched"
