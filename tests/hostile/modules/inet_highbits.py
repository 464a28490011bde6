"""Hostile module: socket(AF_INET | 1 << 32): high bits that slip past a plain EQ rule."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class InetHighbits(Hostile):
    """socket(AF_INET | 1 << 32): high bits that slip past a plain EQ rule."""

    def attempt(self):
        return syscall_outcome(41, socket.AF_INET | (1 << 32), socket.SOCK_STREAM, 0)
