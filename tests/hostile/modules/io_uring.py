"""Hostile module: io_uring_setup: I/O that no syscall filter sees."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class IoUring(Hostile):
    """io_uring_setup: I/O that no syscall filter sees."""

    def attempt(self):
        params = ctypes.create_string_buffer(120)
        return syscall_outcome(425, 8, ctypes.addressof(params))
