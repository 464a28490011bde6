"""Hostile module: execve /bin/sh."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ExecveSh(Hostile):
    """execve /bin/sh."""

    def attempt(self):
        return outcome(lambda: os.execv("/bin/sh", ["sh", "-c", "id > /tmp/pwned"]))
