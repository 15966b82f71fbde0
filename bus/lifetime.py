"""Tying a process's lifetime to its parent's.

voxkey up starts supervisord, and supervisord the stages. Should either parent die
(even by SIGKILL, which it cannot act on), the kernel sends its child SIGTERM: no
stage outlives the command that started it, holding the microphone and typing.
"""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def stop_when_parent_dies(parent: int = 0, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel for `sig` when the parent process dies. Raises OSError if the
    parent (pid `parent` if known) died before the request was made: orphans are
    adopted by init (pid 1) or a subreaper, so the signal would never come."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1 or (parent and os.getppid() != parent):
        raise OSError("the process that started this one is gone")
