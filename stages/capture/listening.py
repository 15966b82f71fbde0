"""Listening: on or off, and held (push-to-talk), as commands change it. Pure."""

from dataclasses import dataclass

from stages.capture import LISTEN_COMMANDS


@dataclass(frozen=True)
class Listening:
    on: bool = True
    held: bool = False  # on only until `release` (push-to-talk)


def in_order(given_ns: int, last_given_ns: int) -> bool:
    """Whether a command given at `given_ns` comes after the last one applied: listen
    commands are taken in the order they were given (monotonic nanoseconds)."""
    return given_ns >= last_given_ns


def listen(current: Listening, command: str) -> Listening:
    """The listening state after a command. A release ends a hold, never a plain `on`:
    a push-to-talk key used while listening anyway must not turn listening off."""
    if command == "on":
        return Listening(True)
    if command == "off":
        return Listening(False)
    if command == "toggle":
        return Listening(not current.on)
    if command == "hold":
        return current if current.on else Listening(True, held=True)
    if command == "release":
        return Listening(False) if current.held else current
    raise ValueError(f"unknown listen command {command!r}: use {', '.join(LISTEN_COMMANDS)}")
