"""Hostile module: TIOCSTI: push keystrokes into the controlling terminal."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class TtyInject(Hostile):
    """TIOCSTI: push keystrokes into the controlling terminal."""

    def attempt(self):
        ch = ctypes.create_string_buffer(b"x")
        return syscall_outcome(16, 0, 0x5412, ctypes.addressof(ch))
