"""Hostile module: An IPv6 socket without declaring network."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class Inet6Connect(Hostile):
    """An IPv6 socket without declaring network."""

    def attempt(self):
        return outcome(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
