"""Hostile module: SIGKILL the supervisor."""

import os
import signal

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class KillParent(Hostile):
    """SIGKILL the supervisor."""

    def attempt(self):
        return outcome(lambda: os.kill(os.getppid(), signal.SIGKILL))
