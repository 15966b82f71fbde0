"""Nobody in: ipc:// sockets only in a private directory, tcp:// only with CURVE keys,
and a CURVE publisher that talks to authorized subscribers alone."""

import os
import socket as net
import time
from pathlib import Path

import pytest
import structlog
import zmq
from conftest import AUDIO, assert_said, spoken, voxkey

from bus import config as configuration
from bus import curve, frames, sockets
from bus.config import ConfigError
from bus.peer import Peer
from bus.sockets import InsecureRunDir


@pytest.fixture
def keys(tmp_path) -> Path:
    return curve.generate(tmp_path / "keys")


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def raw_subscriber(context, address, options=None):
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    curve.apply(sub, options or {})
    sub.connect(address)
    return sub


def received_while_publishing(pub, subs: dict, seconds: float = 1.5) -> dict:
    """Publish for a while; how many messages each subscriber got."""
    got = dict.fromkeys(subs, 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pub.send_multipart([b"transcript", b"secret", b""])
        for name, sub in subs.items():
            while sub.poll(0):
                sub.recv_multipart()
                got[name] += 1
        time.sleep(0.01)
    return got


def test_curve_publisher_talks_only_to_authorized_subscribers(keys, tmp_path, context):
    pub = sockets.publisher(context, "tcp://127.0.0.1:*", str(keys))
    address = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    assert address.startswith("tcp://127.0.0.1:")
    stranger = curve.load(curve.generate(tmp_path / "stranger"))  # a well-formed keypair nobody paired
    clients = zmq.Context()
    try:
        subs = {
            "keyed": sockets.subscriber(clients, [address], [""], str(keys)),
            "no keys": raw_subscriber(clients, address),
            "unauthorized keys": raw_subscriber(
                clients,
                address,
                {
                    zmq.CURVE_PUBLICKEY: stranger.public,
                    zmq.CURVE_SECRETKEY: stranger.secret,
                    zmq.CURVE_SERVERKEY: curve.load(keys).public,
                },
            ),
        }
        got = received_while_publishing(pub, subs)
    finally:
        clients.destroy(linger=0)
        pub.close()
    assert got["keyed"] > 10
    assert got["no keys"] == 0 and got["unauthorized keys"] == 0


def free_port() -> int:
    with net.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_stages_wired_over_tcp_with_curve_keys(keys, tmp_path):
    """The config way: a stage's tcp:// endpoint plus [bus] curve_dir; its subscribers
    mix ipc:// and tcp:// publishers."""
    run_dir = sockets.make_private_dir(tmp_path / "run")
    config = configuration.load(
        overrides=[
            f'bus.run_dir="{run_dir}"',
            f'bus.curve_dir="{keys}"',
            f'stages.asr.endpoint="tcp://127.0.0.1:{free_port()}"',
        ]
    )
    log = structlog.get_logger()
    asr, keys_stage = Peer("asr", config, [], [], log), Peer("keys", config, [], [], log)
    router = Peer("router", config, ["asr", "keys"], ["transcript", "typed"], log)
    try:
        deadline = time.monotonic() + 10
        while not router.heard_all():
            assert time.monotonic() < deadline, f"router heard only {router.heard}"
            asr.heartbeat(True)
            keys_stage.heartbeat(True)
            router.receive(50)
        asr.publish(frames.Transcript(text="over tcp"))
        frame = router.receive(2000)
        while frame is not None and frame.topic != "transcript":
            frame = router.receive(2000)
        assert frame is not None and frame.body.text == "over tcp"
    finally:
        for peer in (asr, keys_stage, router):
            peer.close()


def test_a_replay_over_tcp_with_curve_keys_types_the_same(keys):
    settings = [
        f"bus.curve_dir={keys}",
        f"stages.asr.endpoint=tcp://127.0.0.1:{free_port()}",
        f"stages.router.endpoint=tcp://127.0.0.1:{free_port()}",
    ]
    over_tcp = voxkey("replay", AUDIO / "jfk.flac", *(arg for setting in settings for arg in ("--set", setting)))
    assert over_tcp.returncode == 0, over_tcp.stderr[-2000:]
    assert_said(over_tcp.stdout, spoken("jfk.flac"))


def test_a_replay_over_tcp_without_keys_is_refused_in_one_line():
    result = voxkey("replay", AUDIO / "jfk.flac", "--set", "stages.asr.endpoint=tcp://127.0.0.1:5601", timeout=60)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip() == (
        "voxkey: endpoint tcp://127.0.0.1:5601 needs CURVE keys: run `voxkey pair` (it makes this host's), "
        'or create them with `python -m bus.curve DIR` and set [bus] curve_dir = "DIR"'
    )


def one_line_config_error(call) -> str:
    with pytest.raises(ConfigError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


def test_tcp_without_curve_keys_is_refused(context, tmp_path):
    message = one_line_config_error(lambda: sockets.publisher(context, "tcp://127.0.0.1:5601"))
    assert "tcp://127.0.0.1:5601" in message and "curve_dir" in message and "python -m bus.curve" in message
    assert "curve_dir" in one_line_config_error(
        lambda: sockets.subscriber(context, ["tcp://127.0.0.1:5601"], ["audio"])
    )
    run_dir = sockets.make_private_dir(tmp_path / "run")
    config = configuration.load(overrides=[f'bus.run_dir="{run_dir}"', 'stages.asr.endpoint="tcp://127.0.0.1:5601"'])
    assert "curve_dir" in one_line_config_error(lambda: Peer("asr", config, [], [], structlog.get_logger()))
    assert "curve_dir" in one_line_config_error(lambda: Peer("router", config, ["asr"], [], structlog.get_logger()))


def test_other_transports_and_abstract_sockets_are_refused(context):
    assert "abstract" in one_line_config_error(lambda: sockets.publisher(context, "ipc://@voxkey-asr"))
    assert "only ipc://" in one_line_config_error(lambda: sockets.publisher(context, "ws://127.0.0.1:5601"))


def test_curve_keys_must_be_private_and_present(context, keys, tmp_path):
    assert "already holds CURVE keys" in one_line_config_error(lambda: curve.generate(keys))
    keys.chmod(0o750)
    assert "chmod 700" in one_line_config_error(lambda: sockets.publisher(context, "tcp://127.0.0.1:*", str(keys)))
    empty = sockets.make_private_dir(tmp_path / "empty")
    assert "python -m bus.curve" in one_line_config_error(
        lambda: sockets.subscriber(context, ["tcp://127.0.0.1:5601"], [""], str(empty))
    )
    assert "python -m bus.curve" in one_line_config_error(
        lambda: sockets.publisher(context, "tcp://127.0.0.1:*", str(empty))
    )
    keys.chmod(0o700)
    (keys / curve.HOSTS).unlink()
    assert "hosts.toml is missing" in one_line_config_error(
        lambda: sockets.publisher(context, "tcp://127.0.0.1:*", str(keys))
    )


def test_publisher_refuses_a_socket_directory_others_can_open(context, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(InsecureRunDir) as refused:
        sockets.publisher(context, f"ipc://{shared}/asr.sock")
    assert str(refused.value) == f"socket directory {shared} is mode 755: others can open it (chmod 700 {shared})"
    assert not (shared / "asr.sock").exists()
    shared.chmod(0o700)
    sockets.publisher(context, f"ipc://{shared}/asr.sock").close()


def test_publisher_refuses_a_missing_socket_directory(context, tmp_path):
    with pytest.raises(InsecureRunDir, match="does not exist"):
        sockets.publisher(context, f"ipc://{tmp_path}/nowhere/asr.sock")


@pytest.mark.skipif(os.getuid() != 0, reason="only root can make a directory owned by another user to test with")
def test_publisher_refuses_a_socket_directory_someone_else_owns(context, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)  # nobody
    with pytest.raises(InsecureRunDir, match="owned by uid 65534, not you"):
        sockets.publisher(context, f"ipc://{theirs}/asr.sock")


def test_a_symlinked_run_directory_is_refused_and_nothing_in_its_target_is_touched(context, tmp_path):
    """With XDG_RUNTIME_DIR unset the run directory is /tmp/voxkey-UID: another user could
    plant a symlink there to a private directory of ours, where voxkey would bind sockets
    and delete state files."""
    mine = tmp_path / "private"
    mine.mkdir(mode=0o700)
    (mine / "keys.state.json").write_text("precious")
    planted = tmp_path / "voxkey-link"
    planted.symlink_to(mine)
    with pytest.raises(InsecureRunDir, match="symbolic link"):
        sockets.publisher(context, f"ipc://{planted}/asr.sock")
    with pytest.raises(InsecureRunDir, match="symbolic link"):
        sockets.make_private_dir(planted)
    assert [p.name for p in mine.iterdir()] == ["keys.state.json"]
