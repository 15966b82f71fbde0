"""`voxkey service`: the systemd user unit that starts voxkey at login. No user systemd
runs on this machine: the unit is checked by systemd's own `systemd-analyze verify`,
and install is tested up to what needs the user's session (it must say so)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, VOXKEY

from voxkey.service import unit_text


def verify(unit: Path) -> subprocess.CompletedProcess:
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is not installed (package systemd)")
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_the_unit_is_one_systemd_accepts_and_a_broken_one_is_not(tmp_path):
    good = tmp_path / "voxkey.service"
    home = tmp_path / "my 100% config"  # quoted for systemd, which reads % as a specifier
    good.write_text(unit_text(Path(sys.executable).parent / "voxkey", tmp_path / "my.toml", home))
    assert verify(good).returncode == 0, verify(good).stderr
    text = good.read_text()
    assert f"ExecStart={Path(sys.executable).parent / 'voxkey'} up --config {tmp_path / 'my.toml'}" in text
    assert f'Environment="XDG_CONFIG_HOME={tmp_path}/my 100%% config"' in text
    assert "Restart=on-failure" in text and "StartLimitBurst=3" in text and "WantedBy=graphical-session.target" in text
    broken = tmp_path / "broken.service"
    broken.write_text(unit_text(Path("/nonexistent/voxkey"), None))
    assert verify(broken).returncode != 0  # the check above can fail


def service(action: str, config_home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home), "WAYLAND_DISPLAY": "wayland-1"}
    return subprocess.run(
        [*VOXKEY, "service", action, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_install_writes_the_unit_and_says_what_is_left_to_do_without_a_user_systemd(tmp_path):
    installed = service("install", tmp_path, "--config", "my.toml")
    unit = tmp_path / "systemd" / "user" / "voxkey.service"
    assert unit.is_file() and f"--config {REPO / 'my.toml'}" in unit.read_text()  # made absolute
    assert installed.returncode == 1  # written, not enabled: systemd could not be reached here
    wrote, reads, failed = installed.stderr.splitlines()  # what was done, then what failed
    assert wrote == f"voxkey: wrote {unit}"
    mine = tmp_path / "voxkey" / "config.toml"
    assert f"reads its settings from {mine} (does not exist yet: " in reads and f", then {REPO / 'my.toml'};" in reads
    assert (
        "written but not enabled" in failed
        and "systemctl --user daemon-reload" in failed
        and "enable --now voxkey.service" in failed
    )
    removed = service("uninstall", tmp_path)
    assert removed.returncode == 0 and not unit.exists() and f"removed {unit}" in removed.stderr
    assert "is not installed" in service("uninstall", tmp_path).stderr


def test_without_config_the_service_reads_the_users_own_file_at_each_start(tmp_path):
    """`voxkey up` with no --config: the file is read anew at every start, from the
    XDG_CONFIG_HOME install was given, whatever the user manager's environment says."""
    mine = tmp_path / "voxkey" / "config.toml"
    mine.parent.mkdir()
    mine.write_text("[stages.asr]\nbeam_size = 2\n")
    installed = service("install", tmp_path)
    unit = (tmp_path / "systemd" / "user" / "voxkey.service").read_text()
    assert f"\nExecStart={Path(sys.executable).parent / 'voxkey'} up\n" in unit
    assert f'\nEnvironment="XDG_CONFIG_HOME={tmp_path}"\n' in unit
    [reads] = [line for line in installed.stderr.splitlines() if "reads its settings" in line]
    assert reads.endswith(f"the service reads its settings from {mine} (exists); voxkey config shows them")
