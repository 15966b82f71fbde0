"""Headless desktops with a real app to type into, for the typing tests and the typing
bench alike: an xterm under Xvfb (X11), and foot under a headless sway (Wayland). In
each, the app's shell runs `cat` on a tty in canonical mode and writes what it gets to
a file, so a line reaches the file at its Return, as typed. And a microphone that is
a real PulseAudio source, for the tests and the lifecycle bench. The sway can have a
bar (swaybar, a tray host) on a session bus of its own, and be photographed (grim).

Every wait here is for a fact (a socket, a focused window, a file), with a deadline
only for giving up.
"""

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

WAYLAND_USER = "voxkeytest"  # sway refuses to run as root
# xterm pastes the CLIPBOARD selection on no key by default; GUI apps use ctrl+v.
XTERM_PASTES_ON_CTRL_V = ["-xrm", "XTerm*VT100.translations: #override Ctrl <Key>v: insert-selection(CLIPBOARD)"]


class SessionError(Exception):
    pass


def wait_until(condition, seconds: float, what: str, every_s: float = 0.05):
    """`condition()`'s first true result, asked every `every_s`; SessionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() >= deadline:
            raise SessionError(f"{what}: not within {seconds} s")
        time.sleep(every_s)
    return result


def run_on_sessions(run, markdown, say) -> int:
    """A bench on these sessions (`run(say=...)`): prints its summary and returns 0, or
    says in one line why a session could not start and returns 1."""
    try:
        print(markdown(run(say=say)))
    except SessionError as error:
        say(f"voxkey bench: {error}")
        return 1
    return 0


def say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def missing_tools(*tools: str) -> list[str]:
    return [tool for tool in tools if not shutil.which(tool)]


# --- a microphone ------------------------------------------------------------------------

MICROPHONE_SINK = "vk_in"


@contextlib.contextmanager
def microphone():
    """A real PulseAudio server whose default source is a null sink's monitor: whatever
    is played into the sink (yielded: its name) is what the microphone hears, and
    silence otherwise. No hardware is faked: PortAudio records from PulseAudio as it
    would from a USB microphone (at 44.1 kHz)."""
    started = subprocess.run(["pulseaudio", "--check"]).returncode != 0
    if started:
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], check=True, stderr=subprocess.DEVNULL)
    module = subprocess.run(
        ["pactl", "load-module", "module-null-sink", f"sink_name={MICROPHONE_SINK}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(["pactl", "set-default-source", f"{MICROPHONE_SINK}.monitor"], check=True)
    try:
        yield MICROPHONE_SINK
    finally:
        subprocess.run(["pactl", "unload-module", module])
        if started:  # gone before the next one starts: a server still exiting refuses modules
            subprocess.run(["pulseaudio", "--kill"])
            wait_until(lambda: subprocess.run(["pulseaudio", "--check"]).returncode != 0, 30, "PulseAudio to exit")


def recording_clients() -> int:
    """How many streams record from PulseAudio now (a microphone still held)."""
    listed = subprocess.run(["pactl", "list", "short", "source-outputs"], capture_output=True, text=True, check=True)
    return len(listed.stdout.splitlines())


# --- X11 ---------------------------------------------------------------------------------


@contextlib.contextmanager
def x_server():
    """A real X server (Xvfb); yields its display. It names its display on a pipe once it
    accepts connections, and never resets: by default an X server regenerates when its
    last client leaves, and a window opened in that moment cannot reach the display."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=[write_end],
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()
    if not number:
        raise SessionError(f"Xvfb exited with {server.wait()} before naming its display")
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait()


class Xterm:
    """An xterm, focused, whose shell writes every line typed into it to `out`."""

    def __init__(self, display: str, out: Path, *xterm_args: str):
        self.out = out
        self.env = {**os.environ, "DISPLAY": display, "LC_ALL": "C.UTF-8"}
        self.env.pop("WAYLAND_DISPLAY", None)
        self.process = subprocess.Popen(
            ["xterm", "-u8", *xterm_args, "-e", "sh", "-c", f"stty -echo; cat > {out}"], env=self.env
        )
        wait_until(self._focused, 15, "the xterm window was focused")
        wait_until(out.exists, 10, "the xterm's shell started cat")

    def _focused(self) -> bool:  # the window exists before it is mapped; focus succeeds once it is viewable
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--pid", str(self.process.pid)],
            env=self.env,
            capture_output=True,
            text=True,
        )
        windows = found.stdout.split()
        return (
            bool(windows)
            and subprocess.run(
                ["xdotool", "windowfocus", "--sync", windows[-1]], env=self.env, capture_output=True, timeout=10
            ).returncode
            == 0
        )

    def read_back(self) -> str:
        """Ends the line and the input, and returns all the shell received."""
        subprocess.run(["xdotool", "key", "Return", "ctrl+d"], env=self.env, check=True)
        self.process.wait(timeout=10)
        return self.out.read_text(encoding="utf-8")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --- Wayland -----------------------------------------------------------------------------


def sway_user() -> pwd.struct_passwd | None:
    """The unprivileged user sway runs as when we are root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(WAYLAND_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", WAYLAND_USER], check=True, capture_output=True)
        return pwd.getpwnam(WAYLAND_USER)


def focused_app(swaysock: Path) -> str | None:
    tree = subprocess.run(
        ["swaymsg", "-s", str(swaysock), "-t", "get_tree"], capture_output=True, text=True, timeout=10
    )
    if tree.returncode != 0:
        return None
    nodes = [json.loads(tree.stdout)]
    while nodes:
        node = nodes.pop()
        if node.get("focused"):
            return node.get("app_id")
        nodes += node.get("nodes", []) + node.get("floating_nodes", [])
    return None


class Foot:
    """foot, focused in a headless sway, its shell writing each line it gets to `out`.
    `bus_address`: the session bus of the sway's bar, if it was given one."""

    def __init__(self, socket: Path, out: Path, bus_address: str = ""):
        self.out = out
        self.bus_address = bus_address
        # As root, through the absolute path of the socket of another user's compositor.
        self.env = {**os.environ, "WAYLAND_DISPLAY": str(socket)}
        self.env.pop("DISPLAY", None)

    def screenshot(self) -> "Picture":
        """The whole output as the compositor shows it now (grim, wlr-screencopy)."""
        shot = subprocess.run(["grim", "-t", "ppm", "-"], env=self.env, capture_output=True, timeout=30)
        if shot.returncode != 0:
            raise SessionError(f"grim failed: {shot.stderr.decode(errors='replace')[-500:]}")
        return Picture.from_ppm(shot.stdout)

    def typed(self, action, lines: int = 1, seconds: float = 10) -> str:
        """What the shell received while `action` ran, once it holds `lines` more lines."""
        before = len(self.out.read_bytes())

        def received() -> bytes:
            new = self.out.read_bytes()[before:]
            return new if new.count(b"\n") >= lines else b""

        action()
        return wait_until(received, seconds, f"foot's shell received {lines} line(s)").decode("utf-8")

    def clipboard(self) -> str | None:
        pasted = subprocess.run(["wl-paste", "--no-newline"], env=self.env, capture_output=True, timeout=10)
        return pasted.stdout.decode("utf-8") if pasted.returncode == 0 else None

    def copy(self, text: str | None) -> None:
        argv = ["wl-copy", "--clear"] if text is None else ["wl-copy", "--", text]
        # wl-copy forks a server that keeps the clipboard: no pipe for it to hold open
        subprocess.run(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=10)


@contextlib.contextmanager
def headless_sway(bar: str = "", session_bus: bool = False):
    """A headless sway (as an unprivileged user when we are root) running foot; yields the Foot.

    `bar`: a `bar { ... }` block for its config (TRAY_BAR: swaybar with a tray).
    `session_bus`: a D-Bus session bus of its own for sway and its bar (a tray host
    needs one), which every user may use (we may be root, sway is not); its address
    is the Foot's `bus_address`."""
    user = sway_user()
    root = Path(tempfile.mkdtemp(prefix="voxkey-sway-"))
    runtime, records = root / "runtime", root / "records"
    runtime.mkdir(mode=0o700)
    records.mkdir()
    out = records / "foot.txt"
    (root / "config").write_text(f"exec foot -e sh -c 'stty -echo; cat > {out}'\n{bar}")
    log = root / "sway.log"
    root.chmod(0o755)
    if user is not None:
        for path in (runtime, records):
            os.chown(path, user.pw_uid, user.pw_gid)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": user.pw_dir if user else os.environ.get("HOME", "/"),
        "XDG_RUNTIME_DIR": str(runtime),
        "WLR_BACKENDS": "headless",
        "WLR_LIBINPUT_NO_DEVICES": "1",
        "WLR_RENDERER": "pixman",
    }
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    bus = None
    if session_bus:
        bus, env["DBUS_SESSION_BUS_ADDRESS"] = own_session_bus(root, runtime, as_user)
    with log.open("wb") as output:
        sway = subprocess.Popen(
            ["sway", "-c", str(root / "config")], env=env, stdout=output, stderr=subprocess.STDOUT, **as_user
        )
    try:

        def listening(pattern: str):
            if sway.poll() is not None:
                raise SessionError(f"sway exited: {log.read_text()[-2000:]}")
            return next((path for path in runtime.glob(pattern) if not path.name.endswith(".lock")), None)

        socket = wait_until(lambda: listening("wayland-*"), 20, "sway opened its Wayland socket")
        swaysock = wait_until(lambda: listening("sway-ipc.*.sock"), 20, "sway opened its IPC socket")
        wait_until(lambda: focused_app(swaysock) == "foot", 20, "foot was focused")
        wait_until(out.exists, 20, "foot's shell started cat")
        yield Foot(socket, out, env.get("DBUS_SESSION_BUS_ADDRESS", ""))
    finally:
        for process in (sway, bus):  # foot and the bar go with their display
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


# A bar at the top with a tray (swaybar is a StatusNotifierItem host, and the watcher
# when none runs), its icons TRAY_ICON_PX pixels square. No status line, no workspace
# buttons: the tray is all there is on it.
TRAY_BAR_HEIGHT = 32
TRAY_ICON_PX = 24
TRAY_BAR = f"""
bar {{
    position top
    height {TRAY_BAR_HEIGHT}
    workspace_buttons no
    tray_output *
    tray_padding {(TRAY_BAR_HEIGHT - TRAY_ICON_PX) // 2}
    colors {{
        background #101010
    }}
}}
"""

SESSION_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def own_session_bus(root: Path, runtime: Path, as_user: dict) -> tuple[subprocess.Popen, str]:
    """A dbus-daemon for a test desktop, as its user, open to every user (a session
    bus lets in only its own user otherwise, and the tests may run as root); returns
    it and its address once it accepts connections."""
    socket = runtime / "bus"
    (root / "session-bus.conf").write_text(SESSION_BUS_CONFIG.format(socket=socket))
    daemon = subprocess.Popen(
        ["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={root / 'session-bus.conf'}", "--print-address"],
        stdout=subprocess.PIPE,
        text=True,
        **as_user,
    )
    if not daemon.stdout.readline().strip():  # printed once it listens
        raise SessionError(f"dbus-daemon exited with {daemon.wait()} before it listened")
    return daemon, f"unix:path={socket}"


@dataclass(frozen=True)
class Picture:
    """A screenshot's pixels: RGB, row by row."""

    width: int
    height: int
    rgb: bytes

    @classmethod
    def from_ppm(cls, data: bytes) -> "Picture":
        fields = data.split(maxsplit=4)  # P6, width, height, 255, pixels
        if fields[0] != b"P6" or fields[3] != b"255":
            raise SessionError(f"not an 8-bit PPM: {data[:20]!r}")
        width, height = int(fields[1]), int(fields[2])
        return cls(width, height, fields[4][: width * height * 3])

    def crop(self, left: int, top: int, width: int, height: int) -> "Picture":
        rows = (
            self.rgb[(y * self.width + left) * 3 : (y * self.width + left + width) * 3]
            for y in range(top, top + height)
        )
        return Picture(width, height, b"".join(rows))

    def count(self, colour: tuple[int, int, int]) -> int:
        """Pixels of exactly this colour."""
        pixels = self.rgb
        wanted = bytes(colour)
        return sum(1 for at in range(0, len(pixels), 3) if pixels[at : at + 3] == wanted)

    def png(self) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

        stride = self.width * 3
        raw = b"".join(b"\0" + self.rgb[y * stride : (y + 1) * stride] for y in range(self.height))
        header = self.width.to_bytes(4, "big") + self.height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
