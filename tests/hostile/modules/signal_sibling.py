"""Hostile module: Kill a neighbouring worker."""

import os
import signal

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class SignalSibling(Hostile):
    """Kill a neighbouring worker."""

    def attempt(self, pid=0):
        return outcome(lambda: os.kill(pid, signal.SIGKILL))
