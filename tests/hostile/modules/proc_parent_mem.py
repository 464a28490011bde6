"""Hostile module: Read the supervisor's memory through /proc/<ppid>/mem."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ProcParentMem(Hostile):
    """Read the supervisor's memory through /proc/<ppid>/mem."""

    def attempt(self):
        return outcome(lambda: open(f"/proc/{os.getppid()}/mem", "rb").read(16))
