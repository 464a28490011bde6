"""Hostile module: Resolve a public name (UDP to the resolver) without declaring network."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class UdpDns(Hostile):
    """Resolve a public name (UDP to the resolver) without declaring network."""

    def attempt(self):
        return outcome(lambda: socket.getaddrinfo("example.com", 443))
