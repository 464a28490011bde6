"""Hostile module: Open descriptors until the table is full."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class FdExhaustion(Hostile):
    """Open descriptors until the table is full."""

    def attempt(self):
        fds = []
        def go():
            while len(fds) < 100000:
                fds.append(os.open("/dev/null", os.O_RDONLY))
        result = outcome(go)
        result["opened"] = len(fds)
        for fd in fds:
            os.close(fd)
        return result
