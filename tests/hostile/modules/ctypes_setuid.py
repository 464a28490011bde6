"""Hostile module: Raw syscalls through ctypes: setuid(0), setresuid, capset."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class CtypesSetuid(Hostile):
    """Raw syscalls through ctypes: setuid(0), setresuid, capset."""

    def attempt(self):
        return {"setuid": syscall_outcome(105, 0), "setresuid": syscall_outcome(117, 0, 0, 0),
                "uid": os.getuid()}
