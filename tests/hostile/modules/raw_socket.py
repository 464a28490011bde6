"""Hostile module: A raw ICMP socket, even with network declared."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class RawSocket(Hostile):
    """A raw ICMP socket, even with network declared."""

    PERMISSIONS = {'network_access': True}

    def attempt(self):
        return outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
