"""The tray's menu, as com.canonical.dbusmenu (what StatusNotifierItem hosts show for
an item's `Menu` path): pause or resume listening, the mode (radio items), cancel, a
new conversation, quit.

`entries(indicator)` is the menu for what voxkey does now and `command_of(id, indicator)`
what a click on an entry asks: pure, both. `DBusMenu` serves them, telling the host
(LayoutUpdated) when the menu changes. Each command is the one the CLI sends
(voxkey/listen.py, mode.py, cancel.py, conversation.py): a stage's control command.
"""

from dataclasses import dataclass
from typing import Annotated, Any

from dbus_fast import Variant
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

from stages.router.modewords import MODES
from voxkey.indicator import Indicator

PATH = "/MenuBar"
QUIT = "quit"
LISTEN, CANCEL, NEW_CONVERSATION = 1, 2, 3
MODE_IDS = {mode: 10 + number for number, mode in enumerate(MODES)}
QUIT_ID = 20


def sig(signature: str) -> Any:
    """A D-Bus signature as dbus-fast reads it from an annotation."""
    return Annotated[Any, DBusSignature(signature)]


RUNNING = ("listening", "hearing", "thinking", "typing", "paused", "error")


@dataclass(frozen=True)
class Entry:
    id: int
    label: str = ""
    enabled: bool = True
    radio: bool | None = None  # a mode: whether it is the mode now; None: not a radio item
    separator: bool = False

    def properties(self) -> dict[str, Variant]:
        if self.separator:
            return {"type": Variant("s", "separator")}
        shown = {"label": Variant("s", self.label), "enabled": Variant("b", self.enabled)}
        if self.radio is not None:
            shown |= {"toggle-type": Variant("s", "radio"), "toggle-state": Variant("i", int(self.radio))}
        return shown


def entries(indicator: Indicator) -> tuple[Entry, ...]:
    running = indicator.state in RUNNING
    listen = "Resume listening" if indicator.listening is False else "Pause listening"
    return (
        Entry(LISTEN, listen, enabled=running and indicator.listening is not None),
        Entry(4, separator=True),
        *(Entry(MODE_IDS[mode], mode.capitalize(), running, radio=indicator.mode == mode) for mode in MODES),
        Entry(5, separator=True),
        Entry(CANCEL, "Cancel the answer", running),
        Entry(NEW_CONVERSATION, "New conversation", running),
        Entry(6, separator=True),
        Entry(QUIT_ID, "Quit the tray"),
    )


def command_of(entry_id: int, indicator: Indicator, now_ns: int) -> tuple[str, str, dict] | str | None:
    """What a click on entry `entry_id` asks: (stage, command, args) as the CLI sends
    them, QUIT, or None for an entry that asks nothing. Given at `now_ns`, as the CLI's
    commands are given when the command starts."""
    if entry_id == LISTEN:
        return "capture", "listen", {"how": "on" if indicator.listening is False else "off", "since_ns": now_ns}
    for mode, number in MODE_IDS.items():
        if entry_id == number:
            return "router", "mode", {"mode": mode, "since_ns": now_ns}
    if entry_id == CANCEL:
        return "router", "cancel", {"since_ns": now_ns}
    if entry_id == NEW_CONVERSATION:
        return "router", "new-conversation", {}
    return QUIT if entry_id == QUIT_ID else None


class DBusMenu(ServiceInterface):
    """com.canonical.dbusmenu at `PATH`: one level of entries under the root (id 0)."""

    def __init__(self, on_click):
        super().__init__("com.canonical.dbusmenu")
        self.on_click = on_click  # entry id -> None
        self.shown: tuple[Entry, ...] = entries(Indicator("stopped"))
        self.revision = 1

    def show(self, indicator: Indicator) -> None:
        menu = entries(indicator)
        if menu != self.shown:
            self.shown, self.revision = menu, self.revision + 1
            self.LayoutUpdated(self.revision, 0)

    def _layout(self, entry_id: int, depth: int) -> list:
        if entry_id != 0:
            entry = next((entry for entry in self.shown if entry.id == entry_id), None)
            return [entry_id, entry.properties() if entry else {}, []]
        children = [Variant("(ia{sv}av)", [entry.id, entry.properties(), []]) for entry in self.shown] if depth else []
        return [0, {"children-display": Variant("s", "submenu")}, children]

    @method()
    def GetLayout(self, parent_id: sig("i"), depth: sig("i"), names: sig("as")) -> sig("u(ia{sv}av)"):
        return [self.revision, self._layout(parent_id, depth)]

    @method()
    def GetGroupProperties(self, ids: sig("ai"), names: sig("as")) -> sig("a(ia{sv})"):
        return [[entry.id, entry.properties()] for entry in self.shown if entry.id in ids or not ids]

    @method()
    def GetProperty(self, entry_id: sig("i"), name: sig("s")) -> sig("v"):
        entry = next((entry for entry in self.shown if entry.id == entry_id), None)
        return (entry.properties() if entry else {}).get(name, Variant("s", ""))

    @method()
    def Event(
        self,
        entry_id: sig("i"),
        event: sig("s"),
        data: sig("v"),
        timestamp: sig("u"),
    ) -> None:
        if event == "clicked":
            self.on_click(entry_id)

    @method()
    def EventGroup(self, events: sig("a(isvu)")) -> sig("ai"):
        for entry_id, event, _data, _timestamp in events:
            if event == "clicked":
                self.on_click(entry_id)
        return []

    @method()
    def AboutToShow(self, entry_id: sig("i")) -> sig("b"):
        return False

    @method()
    def AboutToShowGroup(self, ids: sig("ai")) -> sig("aiai"):
        return [[], []]

    @signal()
    def LayoutUpdated(self, revision, parent) -> sig("ui"):
        return [revision, parent]

    @signal()
    def ItemsPropertiesUpdated(self) -> sig("a(ia{sv})a(ias)"):
        return [[], []]

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> sig("u"):
        return 3

    @dbus_property(access=PropertyAccess.READ)
    def TextDirection(self) -> sig("s"):
        return "ltr"

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> sig("s"):
        return "normal"

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> sig("as"):
        return []
