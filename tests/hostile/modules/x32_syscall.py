"""Hostile module: An x32-ABI syscall number (getpid | 0x40000000)."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class X32Syscall(Hostile):
    """An x32-ABI syscall number (getpid | 0x40000000)."""

    def attempt(self):
        return syscall_outcome(0x40000000 | 39)
