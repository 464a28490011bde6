"""Hostile module: Raise the open files and CPU limits back up."""

import ctypes
import os
import resource

from _hostile import Hostile, outcome, syscall_outcome


class RaiseRlimit(Hostile):
    """Raise the open files and CPU limits back up (setrlimit, and raw prlimit64)."""

    def attempt(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cpu_soft, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
        wanted = (ctypes.c_uint64 * 2)(hard * 4, hard * 4)
        return {
            "limits": [soft, hard],
            # CPython turns EPERM from setrlimit into ValueError("not allowed to raise ...")
            "setrlimit": outcome(
                lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (hard * 4, hard * 4))
            ),
            "cpu": outcome(lambda: resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard, cpu_hard))),
            "prlimit64": syscall_outcome(302, 0, resource.RLIMIT_NOFILE, ctypes.addressof(wanted), 0),
            "after": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "uid": os.getuid(),
        }
