"""Busy processes beside the bench: `while True: pass`, what one browser tab or a
compile job can be. Each takes a whole core if the scheduler lets it."""

import subprocess
import sys
from contextlib import contextmanager

SPIN = "while True: pass"


def counts(cores: int) -> dict[str, int]:
    """The arms of a load bench: quiet, one hog per half of the cores, one per core
    (on one core the two busy arms are the same, so it is kept once)."""
    arms = {"quiet": 0, "half the cores busy": max(1, cores // 2), "every core busy": max(1, cores)}
    if arms["half the cores busy"] == arms["every core busy"]:
        del arms["half the cores busy"]
    return arms


class Hogs:
    """A number of spinning processes that can be changed while the bench runs."""

    def __init__(self):
        self.spinners: list[subprocess.Popen] = []

    def set(self, count: int) -> None:
        while len(self.spinners) > count:
            spinner = self.spinners.pop()
            spinner.kill()
            spinner.wait()
        while len(self.spinners) < count:
            self.spinners.append(subprocess.Popen([sys.executable, "-c", SPIN]))

    def close(self) -> None:
        self.set(0)


@contextmanager
def hogs(count: int):
    """`count` spinning processes for the length of the block, killed (and reaped) after."""
    spinning = Hogs()
    try:
        spinning.set(count)
        yield spinning.spinners
    finally:
        spinning.close()
