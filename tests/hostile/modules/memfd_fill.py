"""Hostile module: Fill an anonymous memfd: memory that RLIMIT_AS does not see."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class MemfdFill(Hostile):
    """Fill an anonymous memfd: memory that RLIMIT_AS does not see."""

    def attempt(self):
        return outcome(lambda: os.memfd_create("fill"))
