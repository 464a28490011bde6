"""Hostile module: Connect to an abstract unix socket of the host (no path for Landlock)."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class UnixAbstract(Hostile):
    """Connect to an abstract unix socket of the host (no path for Landlock)."""

    def attempt(self, name=""):
        def go():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("\0" + name)
            return "connected"
        return outcome(go)
