"""`voxkey gadget setup|teardown|status|install|uninstall`: the Pi as a USB keyboard, through configfs.

The Linux USB gadget framework (libcomposite) builds a USB device from directories and
files under /sys/kernel/config/usb_gadget: `setup` makes one named voxkey with a single
HID function, a boot-protocol keyboard (the report descriptor of the HID 1.11
specification, appendix B.1), and binds it to the USB device controller (UDC), which
the Pi 5 has once its USB-C port is put in device mode (the dwc2 overlay). The kernel
then exposes the keyboard as /dev/hidg0, which the `hid` sink writes (stages/keys/hid.py).
Every step is skipped when already done, so `setup` can run at every boot; `teardown`
undoes it in reverse. Both need root.

`state` only reads: whether the gadget exists, which UDC it is bound to, and that UDC's
state ("configured" once a host has enumerated it, "not attached" when unplugged);
`voxkey gadget status` and `voxkey doctor` show it.

At boot the gadget is set up by root, so what root runs must be root's: `install` copies
this module (standard library only at import) to /usr/local/libexec/voxkey-gadget, run by
the system's python3, and writes a systemd unit running that copy; a unit running the
user's `.venv` would let anything running as that user become root at the next boot.
It refuses when the copy, the unit or the interpreter could be changed by anyone but root.
"""

import argparse
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONFIGFS = Path("/sys/kernel/config")
UDC_CLASS = Path("/sys/class/udc")
NAME = "voxkey"
FUNCTION = "hid.usb0"
CONFIG = "c.1"
ENGLISH = "0x409"  # USB language id of the strings
# The Linux Foundation's vendor id and its product id for a multifunction composite
# gadget: hosts load their generic drivers, never a vendor's.
IDS = {"idVendor": "0x1d6b", "idProduct": "0x0104", "bcdDevice": "0x0100", "bcdUSB": "0x0200"}
STRINGS = {"manufacturer": "voxkey", "product": "voxkey voice keyboard"}
# HID 1.11, appendix B.1: modifier bits, a reserved byte, five LED outputs with three
# bits of padding, six key usages 0..101.
REPORT_DESCRIPTOR = bytes.fromhex(
    "05 01 09 06 a1 01 05 07 19 e0 29 e7 15 00 25 01 75 01 95 08 81 02 95 01 75 08 81 03"
    "95 05 75 01 05 08 19 01 29 05 91 02 95 01 75 03 91 03"
    "95 06 75 08 15 00 25 65 05 07 19 00 29 65 81 00 c0"
)
FUNCTION_FILES = {"protocol": "1", "subclass": "1", "report_length": "8"}  # boot interface, keyboard
DEVICE_MODE = "on a Pi 5 add dtoverlay=dwc2,dr_mode=peripheral to /boot/firmware/config.txt and reboot"
ENABLE = f"sudo modprobe libcomposite; if that fails, {DEVICE_MODE}"


class GadgetError(Exception):
    """One line: what is missing, and how to get it."""


@dataclass
class GadgetState:
    configured: bool = False  # the gadget's directory exists
    udc: str = ""  # the controller it is bound to, "" if none
    udc_state: str = ""  # that controller's state: "configured" once a host uses it
    controllers: tuple[str, ...] = ()  # the UDCs this machine has
    supported: bool = False  # configfs offers usb_gadget

    @property
    def host_connected(self) -> bool:
        return self.udc_state == "configured"


def gadget_dir(configfs: Path) -> Path:
    return configfs / "usb_gadget" / NAME


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def state(configfs: Path = CONFIGFS, udc_class: Path = UDC_CLASS) -> GadgetState:
    gadget = gadget_dir(configfs)
    udc = read(gadget / "UDC")
    controllers = tuple(sorted(entry.name for entry in udc_class.iterdir())) if udc_class.is_dir() else ()
    return GadgetState(
        configured=gadget.is_dir(),
        udc=udc,
        udc_state=read(udc_class / udc / "state") if udc else "",
        controllers=controllers,
        supported=(configfs / "usb_gadget").is_dir(),
    )


def describe(found: GadgetState, layout: str) -> tuple[str, str, str]:
    """(verdict, detail, fix) of the gadget, for status and doctor: "ok" only when a
    host is connected and can be typed into."""
    if not found.supported:
        return "warn", f"no USB gadget support (libcomposite) in this kernel; host layout {layout}", ENABLE
    detail = (
        f"configured {'yes' if found.configured else 'no'}, bound {found.udc or 'no'}, "
        f"host {'connected' if found.host_connected else 'not connected'} (UDC state {found.udc_state or 'none'}), "
        f"host layout {layout}"
    )
    if not found.configured or not found.udc:
        there = (
            f"controllers here: {', '.join(found.controllers)}"
            if found.controllers
            else "no USB device controller here: see the README"
        )
        return "warn", f"{detail}; {there}", "sudo voxkey gadget setup"
    if not found.host_connected:
        return "warn", detail, "plug the Pi's USB-C port into a computer (and wake it)"
    return "ok", detail, ""


# --- setting up and tearing down -----------------------------------------------------------


def write(path: Path, value: str | bytes) -> None:
    """Sets an attribute, unless it holds `value` already: a bound gadget refuses writes."""
    data = value if isinstance(value, bytes) else value.encode()
    try:
        if path.read_bytes().rstrip(b"\n") == data:
            return
    except OSError:
        pass
    path.write_bytes(data)


def require_support(configfs: Path) -> None:
    if (configfs / "usb_gadget").is_dir():
        return
    if configfs == CONFIGFS and shutil.which("modprobe"):
        subprocess.run(["modprobe", "libcomposite"], capture_output=True)
    if not (configfs / "usb_gadget").is_dir():
        raise GadgetError(f"the kernel has no USB gadget support here (no {configfs / 'usb_gadget'}): {ENABLE}")


def choose_udc(udc_class: Path, wanted: str = "") -> str:
    controllers = sorted(entry.name for entry in udc_class.iterdir()) if udc_class.is_dir() else []
    if wanted and wanted not in controllers:
        raise GadgetError(
            f"no USB device controller {wanted!r} (there are: {', '.join(controllers) or 'none'}): leave out --udc"
        )
    if not controllers:
        raise GadgetError(f"no USB device controller (nothing in {udc_class}): {DEVICE_MODE}")
    return wanted or controllers[0]


def serial_number() -> str:
    """The board's serial number, so a host tells two Pis apart."""
    return (
        read(Path("/sys/firmware/devicetree/base/serial-number")).strip("\x00")
        or read(Path("/etc/machine-id"))[:16]
        or "0"
    )


def require_root(action: str, needed: bool = True, why: str = "changes the kernel's USB devices") -> None:
    if needed and os.geteuid() != 0:
        voxkey = Path(sys.executable).with_name("voxkey")
        raise GadgetError(
            f"gadget {action} {why} and needs root: sudo {voxkey if voxkey.exists() else 'voxkey'} gadget {action}"
        )


def setup(configfs: Path = CONFIGFS, udc_class: Path = UDC_CLASS, udc: str = "") -> str:
    """Makes the gadget and binds it; what was done, in one line."""
    require_root("setup", configfs == CONFIGFS)
    require_support(configfs)
    controller = choose_udc(udc_class, udc)
    gadget = gadget_dir(configfs)
    bound = read(gadget / "UDC")
    if bound == controller:
        return f"the voxkey keyboard gadget is already set up and bound to {controller}"
    if bound:
        raise GadgetError(f"the voxkey gadget is bound to {bound}, not {controller}: sudo voxkey gadget teardown first")
    for name, value in IDS.items():
        make(gadget / name, value)
    for name, value in {**STRINGS, "serialnumber": serial_number()}.items():
        make(gadget / "strings" / ENGLISH / name, value)
    function = gadget / "functions" / FUNCTION
    for name, value in FUNCTION_FILES.items():
        make(function / name, value)
    make(function / "report_desc", REPORT_DESCRIPTOR)
    config = gadget / "configs" / CONFIG
    make(config / "strings" / ENGLISH / "configuration", "voxkey keyboard")
    make(config / "MaxPower", "500")  # mA: the most a USB 2.0 host grants; the Pi may draw more (see the README)
    if not (config / FUNCTION).is_symlink():
        (config / FUNCTION).symlink_to(function)
    try:
        write(gadget / "UDC", controller)
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise
        raise GadgetError(
            f"{controller} is taken by another USB gadget (g_ether, g_serial, or one in {configfs / 'usb_gadget'}): "
            "remove it, then sudo voxkey gadget setup again"
        ) from None
    return f"the voxkey keyboard gadget is set up and bound to {controller}: plug the Pi's USB-C port into a computer"


def make(path: Path, value: str | bytes) -> None:
    """An attribute in a directory made as needed (configfs fills a new directory with
    its attributes; a directory that exists is left as it is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, value)


def teardown(configfs: Path = CONFIGFS) -> str:
    require_root("teardown", configfs == CONFIGFS)
    gadget = gadget_dir(configfs)
    if not gadget.is_dir():
        return "there is no voxkey keyboard gadget to remove"
    if read(gadget / "UDC"):
        (gadget / "UDC").write_text("\n")  # unbinds
    config = gadget / "configs" / CONFIG
    if (config / FUNCTION).is_symlink():
        (config / FUNCTION).unlink()
    for directory in (
        config / "strings" / ENGLISH,
        config,
        gadget / "functions" / FUNCTION,
        gadget / "strings" / ENGLISH,
        gadget,
    ):
        remove(directory)
    return "the voxkey keyboard gadget is removed"


def remove(directory: Path) -> None:
    """configfs removes a directory's attributes and default groups with it; any other
    file system (a stand-in for configfs) wants them removed first."""
    if not directory.is_dir():
        return
    try:
        directory.rmdir()
    except OSError as error:
        if error.errno != errno.ENOTEMPTY:
            raise
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                remove(entry)
            else:
                entry.unlink()
        directory.rmdir()


# --- installing it for boot, root's own ---------------------------------------------------

SCRIPT = Path("usr/local/libexec/voxkey-gadget")  # under the system's root
UNIT = Path("etc/systemd/system/voxkey-gadget.service")
SERVICE = UNIT.name
# The system's interpreter, root's: never the user's virtual environment. `-I`: no
# PYTHON* variables, no user site-packages, not the script's directory on the path.
INTERPRETER = "/usr/bin/python3"


def unit_text(script: Path, udc: str = "") -> str:
    """The root unit that sets the gadget up at boot with the installed copy. Pure."""
    bind = f" --udc {udc}" if udc else ""
    return f"""[Unit]
Description=voxkey USB keyboard gadget
After=systemd-modules-load.service

[Service]
Type=oneshot
RemainAfterExit=yes
# A root-owned copy of voxkey/gadget.py (voxkey gadget install): nothing the user can change runs as root.
ExecStart={script} setup{bind}
ExecStop={script} teardown

[Install]
WantedBy=multi-user.target
"""


def script_text() -> str:
    """This module, to be run alone by the system's python3: it needs nothing but the
    standard library, so the copy builds exactly the tree `voxkey gadget setup` builds."""
    return (
        f"#!{INTERPRETER} -I\n# Installed by `voxkey gadget install`; run as root by {SERVICE}.\n"
        + Path(__file__).read_text()
    )


def unsafe(path: Path) -> str:
    """Why someone other than root could change what `path` names (it, or any directory
    above it, owned by another user or writable by group or others); "" when only root
    can. A root-owned sticky directory (/tmp) above the parent is safe: nobody may rename
    or remove what root put in it."""
    resolved = path.resolve()
    for place in [resolved, *resolved.parents]:
        try:
            found = place.stat()
        except FileNotFoundError:
            continue  # made by root, 0755, when installing
        above = place not in (resolved, resolved.parent)
        sticky = above and stat.S_ISDIR(found.st_mode) and found.st_mode & stat.S_ISVTX
        if found.st_uid != 0:
            return f"{place} belongs to uid {found.st_uid}, not root"
        if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
            return f"{place} is writable by {'group' if found.st_mode & stat.S_IWGRP else 'others'}"
    return ""


def place_root_owned(path: Path, text: str, mode: int) -> None:
    """Writes `text` to `path` as root's (0:0, `mode`), replacing it in one step, making
    root-owned 0755 directories as needed."""
    missing = [parent for parent in reversed(path.parents) if not parent.exists()]
    for directory in missing:
        directory.mkdir(mode=0o755)
        os.chown(directory, 0, 0)
        directory.chmod(0o755)  # mkdir's mode passes through the umask
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as file:
        file.write(text)
    os.chown(file.name, 0, 0)
    os.chmod(file.name, mode)
    os.replace(file.name, path)


def install(root: Path = Path("/"), udc: str = "") -> str:
    """The root-owned copy and its unit; enabled and started when installing on this system."""
    require_root("install", why="writes root's files")
    script, unit = root / SCRIPT, root / UNIT
    interpreter = root / INTERPRETER.lstrip("/")
    if not interpreter.exists():
        raise GadgetError(f"no {INTERPRETER} (the system's Python runs the gadget at boot): sudo apt install python3")
    for path in (script, unit, interpreter):
        why = unsafe(path)
        if why:
            raise GadgetError(f"refusing to install {script}: {why}, so a user could change what root runs at boot")
    place_root_owned(script, script_text(), 0o755)
    place_root_owned(unit, unit_text(Path("/") / SCRIPT, udc), 0o644)
    if root != Path("/") or not shutil.which("systemctl"):
        return f"installed {script} and {unit}"
    for command in (["daemon-reload"], ["enable", "--now", SERVICE]):
        done = subprocess.run(["systemctl", *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise GadgetError(
                f"installed {script} and {unit}, but systemctl {' '.join(command)} failed: "
                f"{done.stderr.strip().splitlines()[-1:] or ['no reason given']} (journalctl -u {SERVICE})"
            )
    return f"installed {script} and {unit}; {SERVICE} is enabled and set the gadget up"


def uninstall(root: Path = Path("/")) -> str:
    require_root("uninstall", why="removes root's files")
    script, unit = root / SCRIPT, root / UNIT
    if root == Path("/") and unit.exists() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", SERVICE], capture_output=True)  # stopping it tears down
    for path in (unit, script):
        path.unlink(missing_ok=True)
    if root == Path("/") and shutil.which("systemctl"):
        subprocess.run(["systemctl", "daemon-reload"], capture_output=True)
    return f"removed {unit} and {script}"


# --- the command -----------------------------------------------------------------------


def act(args) -> int:
    """One action, for `voxkey gadget` and the installed copy alike."""
    configfs, udc_class = Path(args.configfs), Path(args.udc_class)
    try:
        if args.action == "setup":
            print(f"voxkey: {setup(configfs, udc_class, args.udc)}")
        elif args.action == "teardown":
            print(f"voxkey: {teardown(configfs)}")
        elif args.action == "install":
            print(f"voxkey: {install(Path(args.root), args.udc)}")
        elif args.action == "uninstall":
            print(f"voxkey: {uninstall(Path(args.root))}")
        else:
            from voxkey import settings  # only `status` reads the configuration (not in the installed copy)

            layout = settings.load(args.config, args.set)["stages"]["keys"]["hid_layout"]
            verdict, detail, fix = describe(state(configfs, udc_class), layout)
            print(f"voxkey: usb gadget: {detail}" + (f"; fix: {fix}" if fix else ""))
            return 0 if verdict == "ok" else 1
    except GadgetError as error:
        print(f"voxkey: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the kernel refused a value (EBUSY, EINVAL)
        print(f"voxkey: gadget {args.action} failed at {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def add_arguments(parser, actions: list[str]) -> None:
    parser.add_argument("action", choices=actions)
    parser.add_argument("--udc", default="", help="the USB device controller to bind to (default: the first)")
    # Where configfs, the controllers and the system's root are: elsewhere only in tests.
    parser.add_argument("--configfs", default=str(CONFIGFS), help=argparse.SUPPRESS)
    parser.add_argument("--udc-class", default=str(UDC_CLASS), help=argparse.SUPPRESS)
    parser.add_argument("--root", default="/", help=argparse.SUPPRESS)


def add_cli(commands) -> None:
    gadget = commands.add_parser(
        "gadget", help="the Pi as a USB keyboard: set up, remove or show the USB gadget, install it for boot (root)"
    )
    add_arguments(gadget, ["setup", "teardown", "status", "install", "uninstall"])
    gadget.add_argument(
        "--config",
        default=os.environ.get("VOXKEY_CONFIG"),
        help="a TOML file laid over the defaults (status: the host layout)",
    )
    gadget.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one setting")
    gadget.set_defaults(run=act)


def main(argv: list[str]) -> int:
    """The installed copy: `voxkey-gadget setup [--udc UDC]` or `voxkey-gadget teardown`."""
    parser = argparse.ArgumentParser(prog=SCRIPT.name, description="the voxkey USB keyboard gadget, at boot")
    add_arguments(parser, ["setup", "teardown"])
    return act(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
