"""`voxkey service install|uninstall`: start voxkey at login, as a systemd user service.

The unit runs `voxkey up` inside the graphical session: it starts with
graphical-session.target and stops with it, and is restarted if it fails, a few times
at most (a crash loop stops and says so in `systemctl --user status voxkey`). A user
service does not inherit the desktop's environment: without WAYLAND_DISPLAY or
DISPLAY, `auto` could type nowhere. `install` imports them from the shell it runs in,
and prints the line that makes the compositor import them at every login.
"""

import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

UNIT = "voxkey.service"
SESSION_VARIABLES = ("WAYLAND_DISPLAY", "DISPLAY", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP")
AUTOSTART = {
    "labwc": (
        "~/.config/labwc/autostart",
        "dbus-update-activation-environment --systemd " + " ".join(SESSION_VARIABLES),
    ),
    "sway": (
        "~/.config/sway/config",
        "exec dbus-update-activation-environment --systemd " + " ".join(SESSION_VARIABLES),
    ),
}


class ServiceError(Exception):
    pass


def unit_text(voxkey: Path, config: Path | None) -> str:
    """The systemd user unit that runs `voxkey up`. Pure."""
    command = [str(voxkey), "up"] + (["--config", str(config)] if config else [])
    return f"""[Unit]
Description=voxkey: a local voice keyboard
Documentation=file://{Path(__file__).resolve().parent.parent / "README.md"}
PartOf=graphical-session.target
After=graphical-session.target pulseaudio.service pipewire-pulse.service
StartLimitIntervalSec=120
StartLimitBurst=3

[Service]
# voxkey up tells systemd when every stage is ready (sd_notify), and how loading goes.
Type=notify
NotifyAccess=main
TimeoutStartSec=300
ExecStart={shlex.join(command)}
Restart=on-failure
RestartSec=5
# voxkey up stops its stages on SIGTERM; give the model stages time to finish a piece.
TimeoutStopSec=30
# The notifications and the typing tools come from the session; nothing else is needed.
NoNewPrivileges=yes

[Install]
WantedBy=graphical-session.target
"""


def unit_dir(env=os.environ) -> Path:
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(config_home) / "systemd" / "user"


def voxkey_executable() -> Path:
    return Path(sys.executable).parent / "voxkey"


def systemctl(*args: str) -> str:
    """Runs `systemctl --user ARGS`; returns why it failed ("" if it did not)."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed (not a systemd system)"
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=60)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


def install(config: str | None, start: bool, env=os.environ) -> list[str]:
    """Writes and enables the unit; returns what to tell the user. Raises ServiceError
    when the unit was written but systemd could not take it."""
    path = unit_dir(env) / UNIT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(voxkey_executable(), Path(config).resolve() if config else None))
    told = [f"wrote {path}"]
    present = [name for name in SESSION_VARIABLES if env.get(name)]
    steps = [("daemon-reload",), ("import-environment", *present)] if present else [("daemon-reload",)]
    steps.append(("enable", "--now", UNIT) if start else ("enable", UNIT))
    for step in steps:
        why = systemctl(*step)
        if why:
            raise ServiceError(
                f"wrote {path}, but `systemctl --user {' '.join(step)}` failed ({why}); "
                f"in your desktop session run: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
            )
    told.append(f"enabled {UNIT}" + (" and started it" if start else "; it starts at the next login"))
    if not present:
        told.append(
            "no WAYLAND_DISPLAY or DISPLAY here: voxkey will type only once the session's environment is imported"
        )
    for desktop, (file, line) in AUTOSTART.items():
        told.append(f"at every login, {desktop} must import the session's environment: add to {file}: {line}")
    return told


def uninstall(env=os.environ) -> list[str]:
    path = unit_dir(env) / UNIT
    if not path.exists():
        return [f"{path} is not installed"]
    why = systemctl("disable", "--now", UNIT)
    path.unlink()
    reloaded = systemctl("daemon-reload")
    told = [f"removed {path}"]
    if why or reloaded:
        told.append(f"systemd was not told ({why or reloaded}): run systemctl --user daemon-reload in your session")
    return told


def run(args) -> int:
    try:
        told = install(args.config, start=not args.no_start) if args.action == "install" else uninstall()
    except ServiceError as error:
        print(f"voxkey: {error}", file=sys.stderr)
        return 1
    for line in told:
        print(f"voxkey: {line}", file=sys.stderr)
    return 0


def add_cli(commands) -> None:
    service = commands.add_parser("service", help="start voxkey at login (a systemd user service)")
    service.add_argument("action", choices=["install", "uninstall"])
    service.add_argument("--config", help="the TOML file the service runs voxkey up with")
    service.add_argument("--no-start", action="store_true", help="install: enable for the next login only")
    service.set_defaults(run=run)


def tell_service_manager(*assignments: str) -> bool:
    """sd_notify(3) without libsystemd: "READY=1", "STATUS=…", "STOPPING=1" to the
    service manager that started us (systemd sets $NOTIFY_SOCKET for Type=notify).
    False, and nothing done, when there is none."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        try:
            notify.connect(address)
            notify.sendall("\n".join(assignments).encode())
        except OSError:
            return False
    return True
