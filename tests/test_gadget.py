"""`voxkey gadget setup|teardown|status` (voxkey/gadget.py).

This machine has neither configfs with libcomposite nor a USB device controller, so a
temporary directory laid out as configfs stands in for /sys/kernel/config (with the
`usb_gadget` directory libcomposite adds), and another for /sys/class/udc. What is
real: the command, every directory, value and link it makes, and what it says; what is
not: the kernel reacting to them (filling new directories with attributes, enumerating
the device)."""

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


def test_setup_lays_out_a_boot_keyboard_bound_to_the_controller(system):
    configfs, udc_class = system
    done = gadget_command("setup", configfs, udc_class)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == f"voxkey: the voxkey keyboard gadget is set up and bound to {UDC}: "
        "plug the Pi's USB-C port into a computer\n"
    )
    root = configfs / "usb_gadget" / "voxkey"
    values = {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
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
    link = root / "configs" / "c.1" / "hid.usb0"
    assert link.is_symlink() and link.resolve() == (root / "functions" / "hid.usb0").resolve()


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
