"""Hostile module: PTRACE_ATTACH to the supervisor."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class PtraceParent(Hostile):
    """PTRACE_ATTACH to the supervisor."""

    def attempt(self):
        return syscall_outcome(101, 16, os.getppid(), 0, 0)  # ptrace(PTRACE_ATTACH, ppid)
