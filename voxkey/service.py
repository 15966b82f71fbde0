"""`voxkey service install|uninstall`: start voxkey at login, as a systemd user service.

The unit runs `voxkey up` inside the graphical session: it starts with
graphical-session.target and stops with it, and is restarted if it fails, a few times
at most (a crash loop stops and says so in `systemctl --user status voxkey`). A user
service does not inherit the desktop's environment: without WAYLAND_DISPLAY or
DISPLAY, `auto` could type nowhere. `install` imports them from the shell it runs in,
and prints the line that makes the compositor import them at every login.

The settings are read at each start: the user's own file
($XDG_CONFIG_HOME/voxkey/config.toml, when it exists), and over it the file given to
`install --config`, if one was. `install` says which files those are.
"""

import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bus import config as configuration

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


def unit_text(voxkey: Path, config: Path | None, config_home: Path | None = None) -> str:
    """The systemd user unit that runs `voxkey up` (over the settings in `config`, if
    given). `config_home`: the XDG_CONFIG_HOME it runs with, where the user's own file
    is; None leaves systemd's. Pure."""
    command = [str(voxkey), "up"] + (["--config", str(config)] if config else [])
    # What install said the service reads, whatever the user manager's environment says.
    environment = f"Environment={systemd_quoted(f'XDG_CONFIG_HOME={config_home}')}\n" if config_home else ""
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
{environment}ExecStart={shlex.join(command)}
Restart=on-failure
RestartSec=5
# voxkey up stops its stages on SIGTERM; give the model stages time to finish a piece.
TimeoutStopSec=30
# The notifications and the typing tools come from the session; nothing else is needed.
NoNewPrivileges=yes

[Install]
WantedBy=graphical-session.target
"""


def systemd_quoted(text: str) -> str:
    """One word of a unit file's setting, as systemd reads it back (% starts a specifier)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def unit_dir(env=os.environ) -> Path:
    return configuration.config_home(env) / "systemd" / "user"


def set_config_home(env=os.environ) -> Path | None:
    """XDG_CONFIG_HOME as the shell has it, if it sets one systemd would honour."""
    home = env.get("XDG_CONFIG_HOME", "")
    return Path(home) if os.path.isabs(home) else None


def settings_read(user: Path, config: Path | None) -> str:
    """Which configuration files the service reads at each start, and whether the
    user's own is there yet."""
    mine = f"{user} ({'exists' if user.exists() else 'does not exist yet: create it to change settings'})"
    over = f", then {config}" if config else ""
    return f"at each start, the service reads its settings from {mine}{over}; voxkey config shows them"


def voxkey_executable() -> Path:
    return Path(sys.executable).parent / "voxkey"


def systemctl(*args: str) -> str:
    """Runs `systemctl --user ARGS`; returns why it failed ("" if it did not)."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed (not a systemd system)"
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=60)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


def install(config: str | None, start: bool, env=os.environ) -> Iterator[str]:
    """Writes and enables the unit, saying line by line what it did and what is left to
    do. ServiceError when the unit was written but systemd could not take it."""
    path = unit_dir(env) / UNIT
    path.parent.mkdir(parents=True, exist_ok=True)
    given = Path(config).resolve() if config else None
    path.write_text(unit_text(voxkey_executable(), given, set_config_home(env)))
    yield f"wrote {path}"
    yield settings_read(configuration.user_file(env), given)
    present = [name for name in SESSION_VARIABLES if env.get(name)]
    steps = [("daemon-reload",), ("import-environment", *present)] if present else [("daemon-reload",)]
    steps.append(("enable", "--now", UNIT) if start else ("enable", UNIT))
    for step in steps:
        why = systemctl(*step)
        if why:
            raise ServiceError(
                f"`systemctl --user {' '.join(step)}` failed ({why}), so {UNIT} is written but not enabled; "
                f"in your desktop session run: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
            )
    yield f"enabled {UNIT}" + (" and started it" if start else "; it starts at the next login")
    if not present:
        yield "no WAYLAND_DISPLAY or DISPLAY here: voxkey will type only once the session's environment is imported"
    for desktop, (file, line) in AUTOSTART.items():
        yield f"at every login, {desktop} must import the session's environment: add to {file}: {line}"


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
    told = install(args.config, start=not args.no_start) if args.action == "install" else uninstall()
    try:
        for line in told:  # as it goes: what was done before a failure is said too
            print(f"voxkey: {line}", file=sys.stderr)
    except ServiceError as error:
        print(f"voxkey: {error}", file=sys.stderr)
        return 1
    return 0


def add_cli(commands) -> None:
    service = commands.add_parser("service", help="start voxkey at login (a systemd user service)")
    service.add_argument("action", choices=["install", "uninstall"])
    service.add_argument("--config", help="a TOML file the service lays over $XDG_CONFIG_HOME/voxkey/config.toml")
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
