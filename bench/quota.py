"""A CPU quota for the pipeline: a cgroup of its own with a share of a core.

cgroup v2 (`cpu.max`: "QUOTA PERIOD" in microseconds) where the unified hierarchy has
the cpu controller, else cgroup v1's cpu controller (`cpu.cfs_quota_us`,
`cpu.cfs_period_us`). A container may offer neither, or refuse the writes: `probe`
says what this machine allows, and the slow-machine bench then confines by cores
alone (taskset / `stages.NAME.cpus`).

The bench process joins the cgroup just before it starts supervisord and leaves it as
soon as supervisord runs: the stages are supervisord's children, so they stay inside.
"""

import os
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
PERIOD_US = 10_000  # short, so a quota throttles in small slices (closer to a slower CPU than to pauses)


def quota_files(kind: str, share: float, period_us: int = PERIOD_US) -> dict[str, str]:
    """What to write for `share` of one core (0.5: half a core)."""
    quota = max(1000, round(share * period_us))
    if kind == "v2":
        return {"cpu.max": f"{quota} {period_us}"}
    return {"cpu.cfs_period_us": str(period_us), "cpu.cfs_quota_us": str(quota)}


def own_cgroup(proc_cgroup: str, kind: str) -> str:
    """This process's cgroup path from /proc/self/cgroup, for the cpu controller (v1)
    or the unified hierarchy (v2)."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if (kind == "v2" and controllers == "") or (kind == "v1" and "cpu" in controllers.split(",")):
            return path
    return "/"


def controller(root: Path = CGROUP) -> tuple[str, Path] | None:
    """("v2", dir) or ("v1", dir) of the hierarchy with the cpu controller, or None."""
    unified = root / "cgroup.controllers"
    if unified.exists() and "cpu" in unified.read_text().split():
        return "v2", root
    if (root / "cpu" / "cpu.cfs_quota_us").exists():
        return "v1", root / "cpu"
    return None


class Quota:
    """A child cgroup limited to `share` of a core."""

    def __init__(self, share: float, root: Path = CGROUP):
        found = controller(root)
        if found is None:
            raise OSError("no cgroup cpu controller under " + str(root))
        self.kind, hierarchy = found
        self.share = share
        home = own_cgroup(Path("/proc/self/cgroup").read_text(), self.kind).lstrip("/")
        self.home = hierarchy / home
        self.path = self.home / f"voxkey-bench-{os.getpid()}-{round(share * 100)}"
        self.path.mkdir(exist_ok=True)
        try:
            for name, value in quota_files(self.kind, share).items():
                (self.path / name).write_text(value)
        except OSError:
            self.remove()
            raise

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def leave(self) -> None:
        (self.home / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        """Once every process has left (supervisord stopped); retried a little."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)

    def throttled(self) -> dict:
        """The kernel's count of periods the group ran out of quota (cpu.stat)."""
        try:
            pairs = (line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
            return {key: int(value) for key, value in pairs}
        except OSError:
            return {}


def probe(root: Path = CGROUP) -> str:
    """What this machine allows, in words: a quota works, or why not."""
    try:
        quota = Quota(0.5, root)
    except OSError as error:
        return f"no CPU quota: {error}"
    try:
        quota.enter()
        quota.leave()
    except OSError as error:
        return f"no CPU quota: a cgroup was made but could not be joined ({error})"
    finally:
        quota.remove()
    return f"CPU quota: cgroup {quota.kind} ({quota.home})"
