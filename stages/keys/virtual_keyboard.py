"""A virtual keyboard held open on a Wayland compositor: the `zwp_virtual_keyboard_v1`
protocol (wlroots: sway, labwc, Hyprland, river; not GNOME or KDE), spoken through
pywayland and libwayland-client.

The protocol is unstable and not in pywayland's set, so its two interfaces are declared
here, request by request as the protocol defines them (no events). `VirtualKeyboard`
connects, binds the seat and the manager, and then uploads keymaps and sends keys; every
wait on the compositor has a deadline, so a frozen session is an error, not a hang.
"""

import errno
import os
import select
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

from pywayland import ffi
from pywayland.client import Display
from pywayland.protocol.wayland import WlSeat
from pywayland.protocol_core import Argument, ArgumentType, Interface, Proxy

UINT = Argument(ArgumentType.Uint)

KEYMAP_FORMAT_XKB_V1 = 1  # wl_keyboard.keymap_format.xkb_v1
PRESSED, RELEASED = 1, 0  # wl_keyboard.key_state
FIRST_KEYBOARD_SETTLE_S = 0.25


class ZwpVirtualKeyboardV1(Interface):
    name = "zwp_virtual_keyboard_v1"
    version = 1


class ZwpVirtualKeyboardV1Proxy(Proxy[ZwpVirtualKeyboardV1]):
    interface = ZwpVirtualKeyboardV1

    @ZwpVirtualKeyboardV1.request(UINT, Argument(ArgumentType.FileDescriptor), UINT)
    def keymap(self, keymap_format: int, fd: int, size: int) -> None:
        self._marshal(0, keymap_format, fd, size)

    @ZwpVirtualKeyboardV1.request(UINT, UINT, UINT)
    def key(self, time_ms: int, key: int, state: int) -> None:
        self._marshal(1, time_ms, key, state)

    @ZwpVirtualKeyboardV1.request(
        UINT,
        UINT,
        UINT,
        UINT,
    )
    def modifiers(self, depressed: int, latched: int, locked: int, group: int) -> None:
        self._marshal(2, depressed, latched, locked, group)

    @ZwpVirtualKeyboardV1.request()
    def destroy(self) -> None:
        self._marshal(3)
        self._destroy()


class ZwpVirtualKeyboardManagerV1(Interface):
    name = "zwp_virtual_keyboard_manager_v1"
    version = 1


class ZwpVirtualKeyboardManagerV1Proxy(Proxy[ZwpVirtualKeyboardManagerV1]):
    interface = ZwpVirtualKeyboardManagerV1

    @ZwpVirtualKeyboardManagerV1.request(
        Argument(ArgumentType.Object, interface=WlSeat),
        Argument(ArgumentType.NewId, interface=ZwpVirtualKeyboardV1),
    )
    def create_virtual_keyboard(self, seat) -> ZwpVirtualKeyboardV1Proxy:
        return self._marshal_constructor(0, ZwpVirtualKeyboardV1, seat)


for _interface, _proxy in (
    (ZwpVirtualKeyboardV1, ZwpVirtualKeyboardV1Proxy),
    (ZwpVirtualKeyboardManagerV1, ZwpVirtualKeyboardManagerV1Proxy),
):
    _interface._gen_c()
    _interface.proxy_class = _proxy


class WaylandError(OSError):
    """The compositor could not be reached, lacks the protocol, or stopped answering."""


class NoVirtualKeyboard(WaylandError):
    """The compositor does not offer the virtual-keyboard protocol."""


def display_path(env: Mapping[str, str]) -> str:
    """The Wayland socket that `env` names: WAYLAND_DISPLAY, under XDG_RUNTIME_DIR
    unless it is an absolute path (as libwayland resolves it, but from `env`)."""
    name = env.get("WAYLAND_DISPLAY", "")
    if not name or os.path.isabs(name):
        return name
    return str(Path(env.get("XDG_RUNTIME_DIR", "")) / name)


def now_ms() -> int:
    """A key event's time: milliseconds on one clock, as the protocol asks, wrapped to 32 bits."""
    return (time.monotonic_ns() // 1_000_000) & 0xFFFFFFFF


def connect(path: str, timeout_s: float) -> tuple[Display, object, dict[str, int]]:
    """A connection to the compositor at `path`, its registry, and the globals it
    offers (interface name -> global name)."""
    display = Display(path)
    try:
        display.connect()
    except ValueError:
        raise WaylandError(f"cannot connect to the Wayland display {path!r}") from None
    offered: dict[str, int] = {}
    registry = display.get_registry()
    registry.dispatcher["global"] = lambda _registry, name, interface, _version: offered.setdefault(interface, name)
    try:
        sync(display, timeout_s)
    except WaylandError:
        release(display, [registry])
        raise
    return display, registry, offered


def offers_virtual_keyboard(offered: dict[str, int]) -> bool:
    return ZwpVirtualKeyboardManagerV1.name in offered and WlSeat.name in offered


def compositor_offers_virtual_keyboard(path: str, timeout_s: float) -> bool:
    """Whether the compositor at `path` can be reached and offers the protocol."""
    try:
        display, registry, offered = connect(path, timeout_s)
    except WaylandError:
        return False
    release(display, [registry])
    return offers_virtual_keyboard(offered)


def sync(display: Display, timeout_s: float) -> None:
    """Returns once the compositor has handled every request sent so far, or raises
    WaylandError after `timeout_s`."""
    done = []
    callback = display.sync()
    callback.dispatcher["done"] = lambda _callback, _serial: done.append(True)
    try:
        _wait_for(display, done, timeout_s)
    finally:
        callback.destroy()  # now, while the display lives: freed later, it would outlive it


def _wait_for(display: Display, done: list, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    fd = display.get_fd()
    while not done:
        if display.flush() < 0:
            if ffi.errno != errno.EAGAIN:
                raise WaylandError("the Wayland compositor closed the connection")
            # Its socket is full: wait until the compositor has read some.
            select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaylandError(f"the Wayland compositor did not answer within {timeout_s:g} s")
        if select.select([fd], [], [], left)[0]:
            try:
                display.read()
                display.dispatch()
            except RuntimeError:
                raise WaylandError("the Wayland compositor closed the connection") from None


class VirtualKeyboard:
    """One virtual keyboard on the compositor at `path`, open until `close()`."""

    def __init__(self, path: str, timeout_s: float):
        self.timeout_s = timeout_s
        self.display, registry, offered = connect(path, timeout_s)
        # Closed at exit if not before, every object by hand: pywayland frees objects
        # when Python collects them, and the display's own list of them misses those
        # the collector is already taking, which it would then free after the display.
        self._owned = [registry]
        self._finalizer = weakref.finalize(self, release, self.display, self._owned)
        try:
            if not offers_virtual_keyboard(offered):
                raise NoVirtualKeyboard(f"the Wayland compositor at {path!r} offers no virtual-keyboard protocol")
            seat = self._own(registry.bind(offered[WlSeat.name], WlSeat, 1))
            capabilities = []
            seat.dispatcher["capabilities"] = lambda _seat, said: capabilities.append(said)
            self.sync()  # the seat says what it has on binding
            manager = self._own(
                registry.bind(offered[ZwpVirtualKeyboardManagerV1.name], ZwpVirtualKeyboardManagerV1, 1)
            )
            self.keyboard = self._own(manager.create_virtual_keyboard(seat))
            self.sync()
        except WaylandError:
            self.close()
            raise
        if not (capabilities and capabilities[-1] & WlSeat.capability.keyboard):
            # The seat had no keyboard (no physical one plugged in): ours makes every
            # app bind a keyboard anew, and keys sent before an app has done so never
            # reach it. Nothing tells when they have: this wait is a margin, paid once
            # per keyboard, which keys opens when it starts, long before speech.
            time.sleep(FIRST_KEYBOARD_SETTLE_S)

    def _own(self, proxy: Proxy) -> Proxy:
        self._owned.append(proxy)
        return proxy

    def upload_keymap(self, keymap: str) -> None:
        """Makes `keymap` (XKB text) this keyboard's: the compositor reads it from a
        memory file, which it and every client it forwards it to map."""
        data = keymap.encode("utf-8") + b"\0"
        fd = os.memfd_create("voxkey-keymap", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            self.keyboard.keymap(KEYMAP_FORMAT_XKB_V1, fd, len(data))
            self.keyboard.modifiers(0, 0, 0, 0)
            self.sync()  # the descriptor has been sent once the compositor answers
        finally:
            os.close(fd)

    def tap(self, key: int) -> None:
        """Presses and releases `key` (an evdev code of the keymap uploaded last); sent at
        the next flush or sync."""
        stamp = now_ms()
        self.keyboard.key(stamp, key, PRESSED)
        self.keyboard.key(stamp, key, RELEASED)

    def hold_modifiers(self, mask: int) -> None:
        self.keyboard.modifiers(mask, 0, 0, 0)

    def sync(self) -> None:
        sync(self.display, self.timeout_s)

    def close(self) -> None:
        self._finalizer()


def release(display: Display, owned: list[Proxy]) -> None:
    """Destroys what was made on the connection, newest first (the keyboard: its
    destroy request tells the compositor), then closes the connection."""
    try:
        for proxy in reversed(owned):
            proxy.destroy()
        display.flush()
    finally:
        display.disconnect()
