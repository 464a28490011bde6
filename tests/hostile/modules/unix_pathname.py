"""Hostile module: Connect to a host service's pathname unix socket (database, docker)."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class UnixPathname(Hostile):
    """Connect to a host service's pathname unix socket (database, docker)."""

    def attempt(self, path=""):
        def go():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return "connected"
        return outcome(go)
