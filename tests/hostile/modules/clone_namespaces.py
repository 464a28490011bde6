"""Hostile module: clone/clone3 with namespace flags, and pidfd_open of the parent."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class CloneNamespaces(Hostile):
    """clone/clone3 with namespace flags, and pidfd_open of the parent."""

    def attempt(self):
        return {"clone_newpid": syscall_outcome(56, 0x20000000 | 17, 0, 0, 0, 0),
                "clone3": syscall_outcome(435, 0, 0),
                "pidfd_open": syscall_outcome(434, os.getppid(), 0)}
