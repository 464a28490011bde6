"""Hostile module: Read the supervisor's environment from /proc/<ppid>/environ."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ProcParentEnviron(Hostile):
    """Read the supervisor's environment from /proc/<ppid>/environ."""

    def attempt(self):
        return outcome(lambda: open(f"/proc/{os.getppid()}/environ", "rb").read())
