"""A key on a local keyboard that controls listening, read through evdev (/dev/input),
for a desktop without key bindings: held down it is push-to-talk ("hold"), or each
press toggles ("toggle")."""

from bus.stage import StageError


def hotkey_command(value: int, action: str) -> str:
    """The listen command for a key event (value 1 down, 0 up, 2 auto-repeat)."""
    if action == "hold":
        return {1: "hold", 0: "release"}.get(value, "")
    return "toggle" if value == 1 else ""


class HotkeyUnavailable(Exception):
    pass


class Hotkey:
    """One key on every local keyboard that has it, read without the desktop's help:
    the user must be able to read /dev/input (the `input` group)."""

    def __init__(self, key: str, action: str):
        if action not in ("hold", "toggle"):
            raise StageError(f"unknown hotkey_action {action!r}: use hold or toggle")
        try:
            import evdev
        except ImportError:
            raise HotkeyUnavailable("the evdev package is missing: reinstall voxkey (./install)") from None
        name = key.upper() if key.upper().startswith("KEY_") else f"KEY_{key.upper()}"
        self.code = evdev.ecodes.ecodes.get(name)
        if self.code is None:
            raise StageError(f"unknown hotkey {key!r}: use a key name such as F9, RIGHTCTRL or KEY_PAUSE")
        self.action = action
        self.key = name
        paths = evdev.list_devices()
        if not paths:
            raise HotkeyUnavailable(
                "no keyboard can be read in /dev/input: add yourself to the input group "
                "(sudo usermod -aG input $USER, then log in again)"
            )
        devices = [evdev.InputDevice(path) for path in paths]
        self.devices = [d for d in devices if self.code in d.capabilities().get(evdev.ecodes.EV_KEY, [])]
        if not self.devices:
            raise HotkeyUnavailable(f"no keyboard in /dev/input has {name}: choose another hotkey")

    def fds(self) -> tuple[int, ...]:
        """The keyboards' descriptors: one becomes readable when a key event waits."""
        return tuple(device.fd for device in self.devices)

    def commands(self) -> list[str]:
        """The listen commands of the key events since the last call (never waits)."""
        commands = []
        for device in list(self.devices):
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            except OSError:  # unplugged
                self.devices.remove(device)
                device.close()
                continue
            commands += [hotkey_command(e.value, self.action) for e in events if e.type == 1 and e.code == self.code]
        return [command for command in commands if command]
