"""Heat and power: is the CPU running at its speed, or held back?

A Pi 5 caps its clock when it is hot (from 80 °C, the soft limit; harder from 85 °C)
and when its supply sags below 4.63 V: every figure the bench measures then grows, and
voxkey feels slow for a reason that is no fault of its own. Read here:

* each core's clock and its most (cpufreq: scaling_cur_freq, cpuinfo_max_freq, kHz);
* the thermal zones' temperatures (millidegrees Celsius);
* the firmware's throttling flags, on a Raspberry Pi (`vcgencmd get_throttled`):
  bit 0 under-voltage now, 1 frequency capped, 2 throttled, 3 soft temperature limit;
  bits 16-19 the same "has occurred since boot".

Parsing is pure (tested on sample texts); reading takes a root directory so a test can
lay out a fake sysfs. What a machine does not expose is said to be "not exposed",
never guessed.
"""

import re
import subprocess
from pathlib import Path

FLAGS = {
    0: "under-voltage",
    1: "frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}
OCCURRED_SHIFT = 16
FIXES = {
    "under-voltage": "use the official 27 W USB-C supply (5.1 V, 5 A) and a short, thick cable",
    "frequency capped": "cool the Pi: fit the Active Cooler or a heatsink case, and give it air",
    "throttled": "cool the Pi: fit the Active Cooler or a heatsink case, and give it air",
    "soft temperature limit": "cool the Pi: fit the Active Cooler or a heatsink case, and give it air",
}
CPU_DIR = Path("sys/devices/system/cpu")
THERMAL_DIR = Path("sys/class/thermal")
THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")


# --- parsing (pure) ---------------------------------------------------------------------


def parse_throttled(text: str) -> dict | None:
    """`throttled=0x50005` -> {"raw": 0x50005, "now": [...], "occurred": [...]}; None when
    the text holds no such value (vcgencmd failed or said something else)."""
    found = THROTTLED.search(text)
    if found is None:
        return None
    value = int(found.group(1), 0)
    return {
        "raw": value,
        "now": [name for bit, name in FLAGS.items() if value >> bit & 1],
        "occurred": [name for bit, name in FLAGS.items() if value >> (bit + OCCURRED_SHIFT) & 1],
    }


def parse_number(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def khz_to_mhz(value: int | None) -> int | None:
    return None if value is None else round(value / 1000)


def millidegrees_to_c(value: int | None) -> float | None:
    return None if value is None else round(value / 1000, 1)


# --- reading ------------------------------------------------------------------------------


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_number(path: Path) -> int | None:
    text = read_text(path)
    return None if text is None else parse_number(text)


def frequencies(root: Path) -> dict[str, dict]:
    """cpuN -> {"cur_mhz", "max_mhz"} for each core whose cpufreq is exposed."""
    found = {}
    cores = sorted((root / CPU_DIR).glob("cpu[0-9]*"), key=lambda path: int(path.name[3:]))
    for core in cores:
        cur = read_number(core / "cpufreq" / "scaling_cur_freq")
        if cur is not None:
            found[core.name] = {
                "cur_mhz": khz_to_mhz(cur),
                "max_mhz": khz_to_mhz(read_number(core / "cpufreq" / "cpuinfo_max_freq")),
            }
    return found


def temperatures(root: Path) -> dict[str, float]:
    """zone type (or thermal_zoneN) -> degrees Celsius."""
    found = {}
    for zone in sorted((root / THERMAL_DIR).glob("thermal_zone*")):
        degrees = millidegrees_to_c(read_number(zone / "temp"))
        if degrees is not None:
            name = (read_text(zone / "type") or zone.name).strip() or zone.name
            found[name if name not in found else zone.name] = degrees
    return found


def vcgencmd_throttled() -> str | None:
    """What `vcgencmd get_throttled` printed; None without vcgencmd (not a Pi)."""
    try:
        done = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def reading(root: Path = Path("/"), throttled_text=vcgencmd_throttled) -> dict:
    """Clocks, temperatures and throttling flags now (each None / empty where not exposed)."""
    text = throttled_text()
    return {
        "frequencies": frequencies(root),
        "temperatures_c": temperatures(root),
        "throttled": None if text is None else parse_throttled(text),
    }


# --- judging (pure) -----------------------------------------------------------------------


def describe(heat: dict) -> str:
    """One line: clocks (lowest/highest of the cores against their most), hottest zone, flags."""
    parts = []
    freq = heat["frequencies"]
    if freq:
        current = [core["cur_mhz"] for core in freq.values()]
        most = max((core["max_mhz"] or 0) for core in freq.values())
        span = f"{min(current)}" if min(current) == max(current) else f"{min(current)}-{max(current)}"
        parts.append(f"CPU {span} MHz" + (f" of {most} MHz" if most else ""))
    else:
        parts.append("CPU frequency not exposed")
    temps = heat["temperatures_c"]
    if temps:
        name, degrees = max(temps.items(), key=lambda item: item[1])
        parts.append(f"{degrees} °C ({name})")
    else:
        parts.append("temperature not exposed")
    flags = heat["throttled"]
    if flags is None:
        parts.append("throttling not exposed (no vcgencmd)")
    else:
        now = ", ".join(flags["now"]) or "none"
        parts.append(f"throttling now: {now} ({flags['raw']:#x})")
        if flags["occurred"]:
            parts.append(f"since boot: {', '.join(flags['occurred'])}")
    return "; ".join(parts)


def judge(heat: dict) -> tuple[str, str, str]:
    """(verdict, detail, fix): a warning only for what the firmware says holds *now*;
    what happened earlier since boot is told in the detail, and what cannot be read is
    not alarming."""
    detail = describe(heat)
    flags = heat["throttled"]
    now = flags["now"] if flags else []
    if not now:
        return "ok", detail, ""
    first = next(name for name in FLAGS.values() if name in now)  # under-voltage first: it causes the rest
    fixes = dict.fromkeys(FIXES[name] for name in now)
    return "warn", f"{first} now: {detail}", f"{first}: {'; '.join(fixes)}"


def summary(heat: dict) -> dict:
    """The few numbers a bench result keeps: lowest and highest clock, hottest zone, flags."""
    current = [core["cur_mhz"] for core in heat["frequencies"].values()]
    most = [core["max_mhz"] for core in heat["frequencies"].values() if core["max_mhz"]]
    temps = heat["temperatures_c"]
    flags = heat["throttled"]
    return {
        "cpu_mhz_min": min(current, default=None),
        "cpu_mhz_max": max(current, default=None),
        "cpu_max_mhz": max(most, default=None),
        "hottest_c": max(temps.values(), default=None),
        "throttled_now": None if flags is None else flags["now"],
        "throttled_since_boot": None if flags is None else flags["occurred"],
        "line": describe(heat),
    }
