"""Worker side: process hygiene — parent-death signal, inherited fds, environment.

Runs first, before the worker reads anything from the host: the worker must die with its
supervisor and must hold no descriptor but the channel's, whatever launched it.
"""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["close_inherited_fds", "die_with_parent"]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(expected_parent: int) -> None:
    """Ask the kernel for SIGKILL when the supervisor dies.

    The parent may already be gone between fork and prctl; checking getppid() afterwards
    closes that race (prctl(2), "PR_SET_PDEATHSIG").
    """
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected_parent:
        os._exit(0)


def close_inherited_fds(keep: set[int]) -> list[int]:
    """Close every descriptor not in `keep`; return the ones closed (for the report)."""
    closed: list[int] = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            os.close(fd)
            closed.append(fd)
        except OSError:
            pass  # the fd listdir itself used, already closed
    return closed
