"""`voxkey gadget setup|teardown|status` (voxkey/gadget.py).

This machine has neither configfs with libcomposite nor a USB device controller, so a
temporary directory laid out as configfs stands in for /sys/kernel/config (with the
`usb_gadget` directory libcomposite adds), and another for /sys/class/udc. What is
real: the command, every directory, value and link it makes, and what it says; what is
not: the kernel reacting to them (filling new directories with attributes, enumerating
the device). `install` writes into a temporary directory standing in for the system's
root (/usr/local/libexec, /etc/systemd/system): the tests run as root, so ownership and
modes are real, but no systemd is asked to enable the unit."""

import configparser
import os
import subprocess
from pathlib import Path

import pytest
from conftest import voxkey

from voxkey import gadget

UDC = "1000480000.usb"  # the name of the Pi 5's controller


@pytest.fixture
def system(tmp_path):
    configfs, udc_class = tmp_path / "config", tmp_path / "udc"
    (configfs / "usb_gadget").mkdir(parents=True)
    (udc_class / UDC).mkdir(parents=True)
    (udc_class / UDC / "state").write_text("not attached\n")
    return configfs, udc_class


def gadget_command(action: str, configfs, udc_class, *more):
    return voxkey("gadget", action, "--configfs", configfs, "--udc-class", udc_class, *more, timeout=60)


def built(configfs) -> dict:
    """The gadget's tree as setup left it: each file's value, and where each link points."""
    root = configfs / "usb_gadget" / "voxkey"

    def value(path):
        return path.resolve().relative_to(root.resolve()) if path.is_symlink() else path.read_bytes()

    return {str(path.relative_to(root)): value(path) for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def test_setup_lays_out_a_boot_keyboard_bound_to_the_controller(system):
    configfs, udc_class = system
    done = gadget_command("setup", configfs, udc_class)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == f"voxkey: the voxkey keyboard gadget is set up and bound to {UDC}: "
        "plug the Pi's USB-C port into a computer\n"
    )
    values = built(configfs)
    assert values.pop("configs/c.1/hid.usb0") == Path("functions/hid.usb0")
    serial = values.pop("strings/0x409/serialnumber")
    assert serial.strip()
    assert values == {
        "idVendor": b"0x1d6b",
        "idProduct": b"0x0104",
        "bcdDevice": b"0x0100",
        "bcdUSB": b"0x0200",
        "strings/0x409/manufacturer": b"voxkey",
        "strings/0x409/product": b"voxkey voice keyboard",
        "functions/hid.usb0/protocol": b"1",
        "functions/hid.usb0/subclass": b"1",
        "functions/hid.usb0/report_length": b"8",
        # HID 1.11 appendix B.1, the boot keyboard, as Linux's gadget_hid documentation gives it
        "functions/hid.usb0/report_desc": bytes(
            [
                0x05,
                0x01,
                0x09,
                0x06,
                0xA1,
                0x01,
                0x05,
                0x07,
                0x19,
                0xE0,
                0x29,
                0xE7,
                0x15,
                0x00,
                0x25,
                0x01,
                0x75,
                0x01,
                0x95,
                0x08,
                0x81,
                0x02,
                0x95,
                0x01,
                0x75,
                0x08,
                0x81,
                0x03,
                0x95,
                0x05,
                0x75,
                0x01,
                0x05,
                0x08,
                0x19,
                0x01,
                0x29,
                0x05,
                0x91,
                0x02,
                0x95,
                0x01,
                0x75,
                0x03,
                0x91,
                0x03,
                0x95,
                0x06,
                0x75,
                0x08,
                0x15,
                0x00,
                0x25,
                0x65,
                0x05,
                0x07,
                0x19,
                0x00,
                0x29,
                0x65,
                0x81,
                0x00,
                0xC0,
            ]
        ),
        "configs/c.1/strings/0x409/configuration": b"voxkey keyboard",
        "configs/c.1/MaxPower": b"500",
        "UDC": UDC.encode(),
    }


def test_setup_again_changes_nothing_and_status_follows_the_host(system):
    configfs, udc_class = system
    assert gadget_command("setup", configfs, udc_class).returncode == 0
    again = gadget_command("setup", configfs, udc_class)
    assert again.returncode == 0 and "already set up and bound to" in again.stdout
    unplugged = gadget_command("status", configfs, udc_class)
    assert unplugged.returncode == 1
    assert unplugged.stdout.startswith(
        f"voxkey: usb gadget: configured yes, bound {UDC}, host not connected (UDC state not attached), host layout us;"
    )
    (udc_class / UDC / "state").write_text("configured\n")  # a host enumerated it
    plugged = gadget_command("status", configfs, udc_class, "--set", 'stages.keys.hid_layout="de"')
    assert (plugged.returncode, plugged.stdout) == (
        0,
        f"voxkey: usb gadget: configured yes, bound {UDC}, host connected (UDC state configured), host layout de\n",
    )


def test_teardown_removes_everything_setup_made(system):
    configfs, udc_class = system
    assert gadget_command("setup", configfs, udc_class).returncode == 0
    removed = gadget_command("teardown", configfs, udc_class)
    assert removed.returncode == 0 and removed.stdout == "voxkey: the voxkey keyboard gadget is removed\n"
    assert list((configfs / "usb_gadget").iterdir()) == []
    assert gadget.teardown(configfs) == "there is no voxkey keyboard gadget to remove"
    status = gadget_command("status", configfs, udc_class)
    assert (
        status.returncode == 1
        and "configured no, bound no" in status.stdout
        and "fix: sudo voxkey gadget setup" in status.stdout
    )


def test_a_kernel_without_libcomposite_or_a_controller_is_refused_in_one_line(system, tmp_path):
    configfs, udc_class = system
    (configfs / "usb_gadget").rmdir()
    refused = gadget_command("setup", configfs, udc_class)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "no USB gadget support" in refused.stderr
    assert "modprobe libcomposite" in refused.stderr and "dtoverlay=dwc2,dr_mode=peripheral" in refused.stderr
    (configfs / "usb_gadget").mkdir()
    (udc_class / UDC / "state").unlink()
    (udc_class / UDC).rmdir()
    refused = gadget_command("setup", configfs, udc_class)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "no USB device controller" in refused.stderr
    assert list((configfs / "usb_gadget").iterdir()) == []  # refused before making anything
    wrong = gadget_command("setup", configfs, tmp_path / "udc", "--udc", "fe980000.usb")
    assert wrong.returncode == 1 and "no USB device controller 'fe980000.usb'" in wrong.stderr


def test_describe_judges_each_state():
    layout = "fr"
    assert gadget.describe(gadget.GadgetState(), layout)[0] == "warn"
    verdict, detail, fix = gadget.describe(gadget.GadgetState(supported=True, controllers=(UDC,)), layout)
    assert verdict == "warn" and f"controllers here: {UDC}" in detail and fix == "sudo voxkey gadget setup"
    verdict, detail, fix = gadget.describe(gadget.GadgetState(True, UDC, "suspended", (UDC,), True), layout)
    assert verdict == "warn" and "host not connected (UDC state suspended)" in detail and "plug" in fix
    verdict, detail, fix = gadget.describe(gadget.GadgetState(True, UDC, "configured", (UDC,), True), layout)
    assert (verdict, fix) == ("ok", "") and detail.endswith("host connected (UDC state configured), host layout fr")


# --- installed for boot: what root runs is root's ----------------------------------------


@pytest.fixture
def system_root(tmp_path):
    """A stand-in for the system's root, holding its python3 (a link to this system's)."""
    root = tmp_path / "sysroot"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3").symlink_to("/usr/bin/python3")
    return root


def only_roots(path) -> None:
    found = path.lstat()
    assert (found.st_uid, found.st_gid) == (0, 0) and not found.st_mode & 0o022, (path, oct(found.st_mode))


def test_install_places_a_root_owned_copy_that_builds_the_same_gadget_and_a_unit_that_runs_it(
    system, system_root, tmp_path
):
    installed = voxkey("gadget", "install", "--root", system_root, timeout=60)
    assert installed.returncode == 0, installed.stderr
    script, unit = system_root / gadget.SCRIPT, system_root / gadget.UNIT
    for path in (script, *script.relative_to(system_root).parents, unit, *unit.relative_to(system_root).parents):
        only_roots(path if path.is_absolute() else system_root / path)
    assert (script.stat().st_mode & 0o777, unit.stat().st_mode & 0o777) == (0o755, 0o644)
    assert script.read_text().startswith("#!/usr/bin/python3 -I\n"), "the system's interpreter, never the .venv"

    service = configparser.ConfigParser(interpolation=None)
    service.read_string(unit.read_text())
    assert service["Service"]["ExecStart"] == "/usr/local/libexec/voxkey-gadget setup"
    assert service["Service"]["ExecStop"] == "/usr/local/libexec/voxkey-gadget teardown"

    # As systemd would run it (by its #! line, alone, outside the repository), against a
    # stand-in configfs: the tree `voxkey gadget setup` builds.
    configfs, udc_class = system
    setup = [script, "setup", "--configfs", configfs, "--udc-class", udc_class]
    by_the_copy = subprocess.run(setup, cwd=tmp_path, capture_output=True, text=True)
    assert by_the_copy.returncode == 0 and "set up and bound to" in by_the_copy.stdout, by_the_copy.stderr
    by_voxkey = tmp_path / "config2"
    (by_voxkey / "usb_gadget").mkdir(parents=True)
    assert gadget_command("setup", by_voxkey, udc_class).returncode == 0
    assert built(configfs) == built(by_voxkey)
    torn = subprocess.run([script, "teardown", "--configfs", configfs], capture_output=True, text=True)
    assert torn.returncode == 0 and list((configfs / "usb_gadget").iterdir()) == []

    removed = voxkey("gadget", "uninstall", "--root", system_root, timeout=60)
    assert removed.returncode == 0 and not script.exists() and not unit.exists(), removed.stderr


@pytest.mark.parametrize("how", ["group-writable", "another user's"])
def test_install_refuses_a_place_someone_else_could_change(system_root, how):
    libexec = system_root / "usr" / "local" / "libexec"
    libexec.mkdir(parents=True)
    if how == "group-writable":
        libexec.chmod(0o775)
    else:
        os.chown(libexec, 1000, 1000)
    refused = voxkey("gadget", "install", "--root", system_root, timeout=60)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "refusing to install" in refused.stderr and str(libexec) in refused.stderr
    assert list(libexec.iterdir()) == [] and not (system_root / gadget.UNIT).exists()
