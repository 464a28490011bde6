"""Hostile module: Mount a tmpfs over the supervisor's files."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class MountTmpfs(Hostile):
    """Mount a tmpfs over the supervisor's files."""

    def attempt(self):
        def go():
            if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
                raise OSError(ctypes.get_errno(), "mount")
        return outcome(go)
