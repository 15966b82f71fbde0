"""The tray item on the session bus: org.kde.StatusNotifierItem, registered with the
org.kde.StatusNotifierWatcher (the tray host's: wf-panel-pi, swaybar, Waybar, KDE).

Its icon (voxkey/tray/icons.py) and tooltip say what voxkey does; on each change it
emits NewIcon, NewToolTip and NewStatus, and hosts read the properties again. A click
on the icon (Activate) pauses or resumes listening; the menu is voxkey/tray/menu.py.
Status is "NeedsAttention" while something is wrong, "Active" otherwise. Hosts that
come later (a panel restarted) are registered with as their watcher appears.
"""

import asyncio
import os

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

from voxkey.indicator import Indicator
from voxkey.tray import icons, menu
from voxkey.tray.menu import sig

PATH = "/StatusNotifierItem"
WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
TROUBLE = ("error", "stopped")


def title(indicator: Indicator) -> str:
    return f"voxkey: {indicator.state}"


class Item(ServiceInterface):
    """What the host reads: the Indicator shown now, as icon, tooltip and status."""

    def __init__(self, on_activate):
        super().__init__("org.kde.StatusNotifierItem")
        self.on_activate = on_activate  # () -> None: a click on the icon
        self.indicator = Indicator("loading", tooltip="voxkey tray: looking for voxkey")

    def show(self, indicator: Indicator) -> None:
        before, self.indicator = self.indicator, indicator
        if indicator.state != before.state:
            self.NewIcon()
            self.NewAttentionIcon()
            self.NewTitle()
        if (indicator.state, indicator.tooltip) != (before.state, before.tooltip):
            self.NewToolTip()
        if (indicator.state in TROUBLE) != (before.state in TROUBLE):
            self.NewStatus(self._status())

    def _status(self) -> str:
        return "NeedsAttention" if self.indicator.state in TROUBLE else "Active"

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> sig("s"):
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> sig("s"):
        return "voxkey"

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> sig("s"):
        return title(self.indicator)

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> sig("s"):
        return self._status()

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> sig("i"):
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> sig("s"):
        return ""  # the pixmap is the icon: no theme needed

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> sig("s"):
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def IconPixmap(self) -> sig("a(iiay)"):
        return icons.pixmaps(self.indicator.state)

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconName(self) -> sig("s"):
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconPixmap(self) -> sig("a(iiay)"):
        return []

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconName(self) -> sig("s"):
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconPixmap(self) -> sig("a(iiay)"):
        return icons.pixmaps(self.indicator.state)

    @dbus_property(access=PropertyAccess.READ)
    def AttentionMovieName(self) -> sig("s"):
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> sig("(sa(iiay)ss)"):
        return ["", icons.pixmaps(self.indicator.state), title(self.indicator), self.indicator.tooltip]

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> sig("b"):
        return False  # a click pauses or resumes; the menu is on the other button

    @dbus_property(access=PropertyAccess.READ)
    def Menu(self) -> sig("o"):
        return menu.PATH

    @method()
    def Activate(self, x: sig("i"), y: sig("i")) -> None:
        self.on_activate()

    @method()
    def SecondaryActivate(self, x: sig("i"), y: sig("i")) -> None:
        pass

    @method()
    def ContextMenu(self, x: sig("i"), y: sig("i")) -> None:
        pass  # hosts show `Menu` themselves

    @method()
    def Scroll(self, delta: sig("i"), orientation: sig("s")) -> None:
        pass

    @signal()
    def NewTitle(self) -> None:
        pass

    @signal()
    def NewIcon(self) -> None:
        pass

    @signal()
    def NewAttentionIcon(self) -> None:
        pass

    @signal()
    def NewOverlayIcon(self) -> None:
        pass

    @signal()
    def NewToolTip(self) -> None:
        pass

    @signal()
    def NewStatus(self, status) -> sig("s"):
        return status


async def publish(item: Item, dbus_menu: menu.DBusMenu, log) -> MessageBus:
    """Connect to the session bus, serve the item and its menu under a name of the
    specification's form, and register with the watcher now and whenever one appears."""
    loop = asyncio.get_running_loop()
    bus = await MessageBus().connect()
    bus.export(PATH, item)
    bus.export(menu.PATH, dbus_menu)
    name = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
    await bus.request_name(name)

    async def register() -> None:
        reply = await bus.call(
            Message(
                destination=WATCHER,
                path=WATCHER_PATH,
                interface=WATCHER,
                member="RegisterStatusNotifierItem",
                signature="s",
                body=[name],
            )
        )
        if reply.message_type == MessageType.ERROR:
            log(f"no tray host yet ({reply.error_name}): waiting for one")
        else:
            log(f"registered with the tray host as {name}")

    pending: set[asyncio.Task] = set()  # kept until done: the loop holds tasks weakly

    def on_message(message: Message) -> None:
        if message.member == "NameOwnerChanged" and message.body[0] == WATCHER and message.body[2]:
            task = loop.create_task(register())  # a host (re)started: it knows nobody yet
            pending.add(task)
            task.add_done_callback(pending.discard)

    bus.add_message_handler(on_message)
    match = f"type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{WATCHER}'"
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[match],
        )
    )
    await register()
    return bus
