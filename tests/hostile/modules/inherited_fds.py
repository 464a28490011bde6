"""Hostile module: Look for descriptors the host left open."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class InheritedFds(Hostile):
    """Look for descriptors the host left open."""

    def attempt(self):
        found = []
        for fd in range(0, 1024):
            try:
                st = os.fstat(fd)
            except OSError:
                continue
            found.append([fd, st.st_dev, st.st_ino])
        return found
