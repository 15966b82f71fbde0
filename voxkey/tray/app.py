"""`voxkey tray` running: the item and its menu on the session bus, fed by a thread
that follows the voxkey's bus (voxkey/indicator.py), and the commands its menu sends.

The follower runs in a thread of its own (its ZeroMQ sockets are only ever touched
there) and hands each new Indicator to the D-Bus loop; a command is sent from the
loop's executor, so a stage slow to answer never freezes the icon.
"""

import asyncio
import signal
import sys
import threading

from bus.asking import ControlError, ask
from bus.config import ConfigError
from bus.frames import now_ns
from voxkey import indicator
from voxkey.cues import Cues, cue_of
from voxkey.indicator import Indicator
from voxkey.running import CliError
from voxkey.tray import menu, sni

RETRY_S = 5.0  # a run directory refused (not private): looked at again this often


def say(message: str) -> None:
    print(f"voxkey tray: {message}", file=sys.stderr, flush=True)


def tell(config: dict, asked: tuple[str, str, dict]) -> None:
    """Send a menu's command as the CLI does, and say how it went."""
    stage, command, args = asked
    try:
        say(f"{command}: {ask(config, stage, command, args)}")
    except ControlError as error:
        say(f"{command}: {error}")


def follow_into(config: dict, stop: threading.Event, hand_over) -> None:
    """The follower thread: each new Indicator goes to `hand_over` (thread-safe)."""
    while not stop.is_set():
        try:
            for shown in indicator.follow(config, stop):
                hand_over(shown)
        except ConfigError as error:  # e.g. a run directory others may open: the fix is in the message
            hand_over(Indicator("error", tooltip=f"voxkey tray: {error}", error=str(error)))
            stop.wait(RETRY_S)


async def serve(config: dict) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    stop = threading.Event()
    cues = Cues() if config["cli"]["sound_cues"] else None

    def click(entry_id: int) -> None:
        asked = menu.command_of(entry_id, item.indicator, now_ns())
        if asked == menu.QUIT:
            done.set()
        elif asked:
            loop.run_in_executor(None, tell, config, asked)

    item = sni.Item(on_activate=lambda: click(menu.LISTEN))
    dbus_menu = menu.DBusMenu(on_click=click)
    try:
        bus = await sni.publish(item, dbus_menu, say)
    except Exception as error:  # no session bus, or one that refuses us: nothing to show an icon on
        raise CliError(
            f"cannot use the D-Bus session bus ({type(error).__name__}: {error}): "
            "start `voxkey tray` from the desktop session (its DBUS_SESSION_BUS_ADDRESS)"
        ) from None

    def show(shown: Indicator) -> None:
        if cues is not None:
            cues.play(cue_of(item.indicator.listening, shown.listening))
        item.show(shown)
        dbus_menu.show(shown)

    follower = threading.Thread(
        target=follow_into,
        args=(config, stop, lambda shown: loop.call_soon_threadsafe(show, shown)),
        name="follower",
        daemon=True,  # between two looks at `stop` it may wait a heartbeat period: not worth waiting for
    )
    follower.start()
    for stopping in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stopping, done.set)
    await done.wait()
    stop.set()
    bus.disconnect()
    return 0
