"""Hostile module: F_SETOWN the supervisor + O_ASYNC: make the kernel send it SIGIO."""

import fcntl
import os
import socket
import time

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class SigioParent(Hostile):
    """F_SETOWN the supervisor + O_ASYNC: make the kernel send it SIGIO."""

    def attempt(self, pid=0):
        target = pid or os.getppid()  # the supervisor (the zygote's pid in zygote mode)
        a, b = socket.socketpair()
        steps = {}
        steps["setown"] = outcome(lambda: fcntl.fcntl(a.fileno(), fcntl.F_SETOWN, target))
        flags = fcntl.fcntl(a.fileno(), fcntl.F_GETFL)
        steps["async"] = outcome(lambda: fcntl.fcntl(a.fileno(), fcntl.F_SETFL, flags | os.O_ASYNC))
        for _ in range(5):
            b.send(b"x")
            time.sleep(0.01)
        steps["owner"] = fcntl.fcntl(a.fileno(), fcntl.F_GETOWN)
        return steps
