"""Two hosts on this machine, for the tests and the bench of stages on two machines:
network namespaces "pi" (10.77.0.1) and "brain" (10.77.0.2), addresses of our own test
network, joined by a veth pair whose Pi end can be cut (`ip link set down`). Each runs
voxkey as a machine of its own would: its own configuration home, where `voxkey pair`
keeps its keys, and its own runtime directory, where its stages' sockets are. They need
root and `ip netns`."""

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PI_ADDRESS, BRAIN_ADDRESS = "10.77.0.1", "10.77.0.2"
NEEDS = "needs root and `ip netns` (network namespaces)"


def can_make_namespaces() -> bool:
    if os.geteuid() != 0:
        return False
    probe = f"vkprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Link:
    pi: str  # the namespaces' names
    brain: str
    pi_end: str  # the Pi's end of the veth pair, in its namespace

    def cut(self) -> None:
        ip("-n", self.pi, "link", "set", self.pi_end, "down")

    def restore(self) -> None:
        ip("-n", self.pi, "link", "set", self.pi_end, "up")


@contextmanager
def namespaces():
    """The two namespaces, joined, for the length of the block."""
    tag = uuid.uuid4().hex[:6]
    link = Link(f"vkpi{tag}", f"vkbrain{tag}", f"vkp{tag}")
    brain_end = f"vkb{tag}"
    ip("netns", "add", link.pi)
    ip("netns", "add", link.brain)
    try:
        ip("link", "add", link.pi_end, "type", "veth", "peer", "name", brain_end)
        for namespace, end, address in ((link.pi, link.pi_end, PI_ADDRESS), (link.brain, brain_end, BRAIN_ADDRESS)):
            ip("link", "set", end, "netns", namespace)
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", end)
            ip("-n", namespace, "link", "set", end, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        yield link
    finally:
        ip("netns", "del", link.pi)
        ip("netns", "del", link.brain)


class Failed(Exception):
    pass


@dataclass
class Machine:
    """One namespace as a machine of its own, running voxkey commands."""

    name: str
    address: str
    namespace: str
    folder: Path
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.env = dict(os.environ)
        for variable, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_RUNTIME_DIR", "run")):
            (self.folder / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self.env[variable] = str(self.folder / sub)

    @property
    def keys_dir(self) -> Path:
        return self.folder / "config" / "voxkey" / "keys"

    def inside(self, *command) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *map(str, command)]

    def voxkey(self, *args, timeout: float = 600) -> subprocess.CompletedProcess:
        """A voxkey command run to its end; Failed (with its output) if it fails."""
        command = self.inside(sys.executable, "-m", "voxkey.cli", *args)
        result = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise Failed(f"voxkey {' '.join(map(str, args))} on {self.name}: {result.stderr[-3000:]}")
        return result

    def start(self, *args, log: str) -> subprocess.Popen:
        """A voxkey command left running: its stdout a pipe, its stderr in `log` here."""
        command = self.inside(sys.executable, "-m", "voxkey.cli", *args)
        with (self.folder / log).open("w") as stderr:
            return subprocess.Popen(command, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True)

    def log(self, name: str) -> str:
        path = self.folder / name
        return path.read_text() if path.exists() else ""

    def wait_for_log(self, name: str, text: str, deadline_s: float = 300) -> None:
        """Until `text` is in log `name`; Failed after `deadline_s` (only to report it)."""
        deadline = time.monotonic() + deadline_s
        while text not in self.log(name):
            if time.monotonic() > deadline:
                raise Failed(f"no {text!r} from {self.name} within {deadline_s:.0f} s: {self.log(name)[-3000:]}")
            time.sleep(0.1)


# A TCP echo across the link, timed on the Pi: the round trip of the link itself, below
# ZeroMQ and CURVE (the namespaces have no ping).
ECHO = """import socket, sys
with socket.create_server((sys.argv[1], int(sys.argv[2]))) as server:
    print("listening", flush=True)
    connection, _ = server.accept()
    while data := connection.recv(64):
        connection.sendall(data)
"""
TIME_ECHO = """import json, socket, sys, time
with socket.create_connection((sys.argv[1], int(sys.argv[2]))) as link:
    link.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(int(sys.argv[3])):
        start = time.perf_counter()
        link.sendall(b"x")
        link.recv(64)
        times.append((time.perf_counter() - start) * 1000)
        time.sleep(0.02)
print(json.dumps(times))
"""


def round_trips_ms(pi: Machine, brain: Machine, count: int = 50, port: int = 47690) -> list[float]:
    """`count` round trips of one byte from the Pi to the brain and back, in ms."""
    echo = subprocess.Popen(
        brain.inside(sys.executable, "-c", ECHO, brain.address, port), stdout=subprocess.PIPE, text=True
    )
    try:
        if echo.stdout.readline().strip() != "listening":
            raise Failed("the echo on the brain did not start")
        timed = subprocess.run(
            pi.inside(sys.executable, "-c", TIME_ECHO, brain.address, port, count),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(timed.stdout)
    finally:
        echo.kill()
        echo.wait()


def pair(one: Machine, other: Machine) -> None:
    """`voxkey pair` on each, and the line it printed run on the other, as a user would."""
    lines = {
        machine.name: machine.voxkey("pair", "--name", machine.name, "--address", machine.address).stdout
        for machine in (one, other)
    }
    for machine, peer in ((one, other), (other, one)):
        _, _, name, address, *key = shlex.split(lines[peer.name].splitlines()[-1])  # as a shell would
        told = machine.voxkey("pair", name, address, *key).stdout
        if f"{peer.name} at {address} is paired with {machine.name}" not in told:
            raise Failed(f"pairing {machine.name} with {peer.name} said: {told}")


@contextmanager
def serving(folder: Path, *stages: str):
    """The Pi and the brain, paired, the brain serving `stages` (default: placement.stages)
    until the block ends: (link, pi, brain)."""
    with namespaces() as link:
        pi = Machine("pi", PI_ADDRESS, link.pi, folder / "pi")
        brain = Machine("brain", BRAIN_ADDRESS, link.brain, folder / "brain")
        pair(pi, brain)
        server = brain.start("serve", *stages, log="serve.log")
        try:
            brain.wait_for_log("serve.log", ": loaded, waiting for it")
            yield link, pi, brain
        finally:
            server.terminate()
            if server.wait(timeout=120) != 0:
                raise Failed(f"voxkey serve did not stop cleanly: {brain.log('serve.log')[-3000:]}")
