"""Heat and power readings (voxkey.heat) and doctor's warning about them.

No Raspberry Pi is at hand: the sysfs trees and `vcgencmd get_throttled` outputs here
are fakes laid out in a temporary directory, shaped as a Pi 5 and a PC show them (the
flag bits as the Raspberry Pi firmware documents them). The real machine is read once
too, to check that whatever it does not expose is said calmly."""

from pathlib import Path

import pytest

from voxkey import doctor, heat


def fake_sysfs(root: Path, cores: dict[int, tuple[int, int]], zones: dict[str, int]) -> Path:
    """cores: N -> (scaling_cur_freq, cpuinfo_max_freq) in kHz; zones: type -> millidegrees."""
    for number, (current, most) in cores.items():
        freq = root / "sys/devices/system/cpu" / f"cpu{number}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_cur_freq").write_text(f"{current}\n")
        (freq / "cpuinfo_max_freq").write_text(f"{most}\n")
    (root / "sys/devices/system/cpu/cpufreq").mkdir(parents=True, exist_ok=True)  # not a core
    for index, (kind, millidegrees) in enumerate(zones.items()):
        zone = root / "sys/class/thermal" / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(f"{kind}\n")
        (zone / "temp").write_text(f"{millidegrees}\n")
    return root


@pytest.mark.parametrize(
    "text, now, occurred",
    [
        ("throttled=0x0\n", [], []),
        ("throttled=0x50000\n", [], ["under-voltage", "throttled"]),
        ("throttled=0x50005\n", ["under-voltage", "throttled"], ["under-voltage", "throttled"]),
        ("throttled=0x80008\n", ["soft temperature limit"], ["soft temperature limit"]),
        (
            "throttled=0xe0006\n",
            ["frequency capped", "throttled"],
            ["frequency capped", "throttled", "soft temperature limit"],
        ),
    ],
)
def test_throttling_flags_are_parsed_bit_by_bit(text, now, occurred):
    flags = heat.parse_throttled(text)
    assert flags["now"] == now and flags["occurred"] == occurred and flags["raw"] == int(text.split("=")[1], 16)


def test_a_text_without_flags_is_not_a_reading():
    assert heat.parse_throttled("VCHI initialization failed\n") is None


def test_clocks_and_temperatures_are_read_from_sysfs(tmp_path):
    root = fake_sysfs(
        tmp_path,
        {0: (1_500_000, 2_400_000), 1: (2_400_000, 2_400_000), 10: (800_000, 2_400_000)},
        {"cpu-thermal": 61_800},
    )
    reading = heat.reading(root, lambda: "throttled=0x0\n")
    assert list(reading["frequencies"]) == ["cpu0", "cpu1", "cpu10"]  # numeric order, no cpufreq dir
    assert reading["frequencies"]["cpu0"] == {"cur_mhz": 1500, "max_mhz": 2400}
    assert reading["temperatures_c"] == {"cpu-thermal": 61.8}
    summary = heat.summary(reading)
    assert (summary["cpu_mhz_min"], summary["cpu_mhz_max"], summary["cpu_max_mhz"]) == (800, 2400, 2400)
    assert summary["throttled_now"] == [] and "800-2400 MHz of 2400 MHz" in summary["line"]


def test_a_machine_exposing_nothing_is_told_calmly(tmp_path):
    verdict, detail, fix = heat.judge(heat.reading(tmp_path, lambda: None))
    assert verdict == "ok" and not fix
    assert detail == "CPU frequency not exposed; temperature not exposed; throttling not exposed (no vcgencmd)"


def test_under_voltage_now_warns_with_the_supply_to_use(tmp_path):
    root = fake_sysfs(tmp_path, {0: (1_000_000, 2_400_000)}, {"cpu-thermal": 55_000})
    check = doctor.check_heat(root, lambda: "throttled=0x50005\n")
    assert check.verdict == "warn" and check.detail.startswith("under-voltage now:")
    assert "official 27 W" in check.fix and "cool" in check.fix  # throttled too: both fixes, once each
    assert check.lines()[0].startswith("warn  heat: under-voltage now")


def test_a_hot_pi_is_told_to_cool(tmp_path):
    root = fake_sysfs(tmp_path, {0: (1_500_000, 2_400_000)}, {"cpu-thermal": 84_000})
    check = doctor.check_heat(root, lambda: "throttled=0xe0006\n")
    assert check.verdict == "warn" and check.detail.startswith("frequency capped now:")
    assert "84.0 °C" in check.detail and "Active Cooler" in check.fix and "27 W" not in check.fix


def test_what_happened_earlier_is_told_but_does_not_warn(tmp_path):
    check = doctor.check_heat(fake_sysfs(tmp_path, {}, {}), lambda: "throttled=0x50000\n")
    assert check.verdict == "ok" and "since boot: under-voltage, throttled" in check.detail


def test_this_machine_is_read_without_alarm():
    check = doctor.check_heat()
    assert check.verdict in {"ok", "warn"} and check.name == "heat"
    if check.verdict == "ok":
        assert not check.fix
