"""`voxkey tray` for real: a StatusNotifierItem on a real session bus, shown by swaybar
(a real tray host) under a headless sway, following a real running voxkey; its icon
photographed with grim. The pure parts (menu, icons, sound) are tested without a bus.

Screenshots of the bar are kept under $VOXKEY_TEST_ARTIFACTS (else tests/artifacts/),
one per state the tray was seen in (stopped, listening, paused, hearing, ...).
"""

import os
import signal
import subprocess
import sys
import tempfile
import wave
from io import BytesIO
from pathlib import Path

import pytest
from conftest import AUDIO, REPO, VOXKEY, voxkey

from bench import sessions
from voxkey import cues as sound
from voxkey.indicator import Indicator
from voxkey.tray import icons, menu

ARTIFACTS = Path(os.environ.get("VOXKEY_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
READY_S = 120  # every stage of voxkey up loaded, on a slow machine
ICON_PIXELS = 100  # of its main colour, at least, in a 24-pixel icon (a disc has ~350)


# --- without a bus -----------------------------------------------------------------------


def test_every_state_has_its_own_icon_at_every_size():
    for size in icons.SIZES:
        drawn = {state: icons.pixmap(state, size) for state in icons.LAYERS}
        assert all(len(pixels) == size * size * 4 for pixels in drawn.values())
        assert len(set(drawn.values())) == len(drawn), "two states look alike"
    centre = 12 * 24 + 12  # listening: the disc's own green, opaque, at its centre
    assert icons.pixmap("listening", 24)[centre * 4 : centre * 4 + 4] == bytes([255, *icons.GREEN])
    assert icons.pixmap("loading", 24)[centre * 4] == 0  # a ring: empty inside


def test_the_menu_says_what_a_click_does_and_asks_what_the_cli_asks():
    listening = Indicator("listening", listening=True, mode="chat")
    shown = {entry.id: entry for entry in menu.entries(listening)}
    assert shown[menu.LISTEN].label == "Pause listening"
    assert [entry.label for entry in shown.values() if entry.radio] == ["Chat"]
    assert menu.command_of(menu.LISTEN, listening, 7) == ("capture", "listen", {"how": "off", "since_ns": 7})
    paused = Indicator("paused", listening=False)
    assert {entry.id: entry for entry in menu.entries(paused)}[menu.LISTEN].label == "Resume listening"
    assert menu.command_of(menu.LISTEN, paused, 7)[2]["how"] == "on"
    assert menu.command_of(menu.MODE_IDS["converse"], paused, 7) == (
        "router",
        "mode",
        {"mode": "converse", "since_ns": 7},
    )
    assert menu.command_of(menu.CANCEL, paused, 7) == ("router", "cancel", {"since_ns": 7})
    assert menu.command_of(menu.NEW_CONVERSATION, paused, 7) == ("router", "new-conversation", {})
    assert menu.command_of(menu.QUIT_ID, paused, 7) == menu.QUIT
    stopped = {entry.id: entry for entry in menu.entries(Indicator("stopped"))}
    assert not stopped[menu.LISTEN].enabled and stopped[menu.QUIT_ID].enabled


def test_sound_cues_rise_when_listening_starts_and_fall_when_it_stops():
    assert [
        sound.cue_of(None, True),
        sound.cue_of(True, False),
        sound.cue_of(False, True),
        sound.cue_of(True, True),
    ] == [
        "",
        "off",
        "on",
        "",
    ]
    with wave.open(BytesIO(sound.tone(660, 990))) as played:
        assert (played.getnchannels(), played.getframerate()) == (1, sound.RATE)
        assert 0.1 < played.getnframes() / played.getframerate() < 0.2


# --- for real ------------------------------------------------------------------------------


class Bar:
    """The tray item as the host sees it: its properties over D-Bus (busctl) and its
    pixels on the bar (grim). Each new state seen is photographed into ARTIFACTS."""

    def __init__(self, desktop: sessions.Foot, tray_pid: int):
        self.desktop = desktop
        self.item = f"org.kde.StatusNotifierItem-{tray_pid}-1"
        self.states_seen: list[str] = []

    def busctl(self, *args: str) -> str:
        done = subprocess.run(
            ["busctl", f"--address={self.desktop.bus_address}", *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    def prop(self, name: str) -> str:
        return self.busctl("get-property", self.item, "/StatusNotifierItem", "org.kde.StatusNotifierItem", name)

    def registered(self) -> bool:
        items = self.busctl(
            "get-property",
            "org.kde.StatusNotifierWatcher",
            "/StatusNotifierWatcher",
            "org.kde.StatusNotifierWatcher",
            "RegisteredStatusNotifierItems",
        )
        return self.item in items

    def click(self, entry_id: int) -> None:
        answer = self.busctl(
            "call",
            self.item,
            menu.PATH,
            "com.canonical.dbusmenu",
            "Event",
            "isvu",
            str(entry_id),
            "clicked",
            "s",
            "",
            "0",
        )
        assert answer == "", answer  # Event returns nothing: a failed call would say why

    def state(self) -> str:
        state = self.prop("Title").removeprefix('s "voxkey: ').removesuffix('"')
        if state and state not in self.states_seen[-1:]:
            self.states_seen.append(state)
            self.keep(state)
        return state

    def until(self, state: str, seconds: float) -> None:
        sessions.wait_until(lambda: self.state() == state, seconds, f"the tray said {state}")

    def picture(self) -> sessions.Picture:
        shot = self.desktop.screenshot()
        return shot.crop(0, 0, shot.width, sessions.TRAY_BAR_HEIGHT)

    def shows(self, state: str) -> sessions.Picture | None:
        """The bar, if it shows `state`'s icon now: each of its colours there (its main
        one over most of it), and no colour only another state's icon has."""
        bar = self.picture()
        own = icons.colours_of(state)
        others = set().union(*map(icons.colours_of, icons.LAYERS)) - own
        drawn = bar.count(icons.MAIN_COLOUR[state]) >= ICON_PIXELS and all(bar.count(colour) for colour in own)
        return bar if drawn and not any(map(bar.count, others)) else None

    def showing(self, state: str, seconds: float = 20) -> sessions.Picture:
        return sessions.wait_until(lambda: self.shows(state), seconds, f"the bar showed the {state} icon")

    def keep(self, state: str) -> None:
        """A photograph of the bar's end for the artifacts, once swaybar has drawn the
        state's icon (a state gone by before it did is kept as the bar was: not a check)."""
        try:
            bar = self.showing(state, seconds=2)
        except sessions.SessionError:
            bar = self.picture()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"tray-{state}.png").write_bytes(bar.crop(bar.width - 256, 0, 256, bar.height).png())


@pytest.fixture
def desktop():
    missing = sessions.missing_tools("sway", "swaybar", "grim", "dbus-daemon", "busctl")
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run ./install")
    with sessions.headless_sway(bar=sessions.TRAY_BAR, session_bus=True) as shown:
        yield shown


def test_the_tray_shows_what_voxkey_does_and_its_menu_drives_it(desktop, microphone, tmp_path):
    run_dir = Path(tempfile.mkdtemp(prefix="voxkey-test-"))
    run_dir.rmdir()  # no voxkey yet: the tray must say so and wait
    at = ["--set", f"bus.run_dir={run_dir}"]
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": desktop.bus_address}
    tray = subprocess.Popen(
        [sys.executable, "-m", "voxkey.tray", *at], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    bar = Bar(desktop, tray.pid)
    up = None
    typed = tmp_path / "typed.txt"
    try:
        sessions.wait_until(bar.registered, 30, "the item registered with the watcher")
        bar.until("stopped", 30)
        assert bar.prop("Status") == 's "NeedsAttention"' and "voxkey up" in bar.prop("ToolTip")
        bar.showing("stopped")

        up = subprocess.Popen(
            [*VOXKEY, "up", *at, "--sink", f"file:{typed}", "--set", "cli.notify=false"],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        bar.until("listening", READY_S)
        assert bar.prop("Status") == 's "Active"' and "listening (dictate, typing with file)" in bar.prop("ToolTip")
        listening = bar.showing("listening")

        assert voxkey("listen", "off", *at).returncode == 0
        bar.until("paused", 30)
        paused = bar.showing("paused")
        assert paused.rgb != listening.rgb and paused.count(icons.GREEN) == 0

        bar.click(menu.LISTEN)  # "Resume listening"
        bar.until("listening", 30)
        bar.click(menu.MODE_IDS["chat"])
        sessions.wait_until(lambda: "(chat," in bar.prop("ToolTip"), 30, "the menu set the mode")
        bar.click(menu.MODE_IDS["dictate"])
        sessions.wait_until(lambda: "(dictate," in bar.prop("ToolTip"), 30, "the menu set the mode back")

        speaking = subprocess.Popen(["paplay", "-d", microphone, str(AUDIO / "dictate_report.wav")])
        bar.until("hearing", 30)  # vad's `speaking`: it lasts as long as the sentence, seconds
        assert speaking.wait(timeout=60) == 0
        sessions.wait_until(lambda: typed.exists() and typed.read_text().strip(), 60, "the sentence was typed")
        bar.until("listening", 30)

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        bar.until("stopped", 30)
        assert tray.poll() is None, "the tray waits for the next voxkey"
        bar.click(menu.QUIT_ID)
        assert tray.wait(timeout=30) == 0
    finally:
        for process, stop in ((up, signal.SIGINT), (tray, signal.SIGTERM)):
            if process is not None and process.poll() is None:
                process.send_signal(stop)
                process.wait(timeout=60)
    assert "registered with the tray host" in tray.stderr.read()
