"""Hostile module: unshare(CLONE_NEWUSER|CLONE_NEWNS): become root in a new namespace."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class UnshareUserns(Hostile):
    """unshare(CLONE_NEWUSER|CLONE_NEWNS): become root in a new namespace."""

    def attempt(self):
        def go():
            if libc.unshare(0x10000000 | 0x00020000) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
        return outcome(go)
