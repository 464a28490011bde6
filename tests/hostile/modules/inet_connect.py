"""Hostile module: Connect to the host's network without declaring it."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class InetConnect(Hostile):
    """Connect to the host's network without declaring it."""

    def attempt(self, port=80):
        def go():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(("127.0.0.1", port))
        return outcome(go)
