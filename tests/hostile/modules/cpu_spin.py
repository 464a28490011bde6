"""Hostile module: Spin the CPU forever."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class CpuSpin(Hostile):
    """Spin the CPU forever."""

    def attempt(self):
        x = 0
        while True:
            x += 1
