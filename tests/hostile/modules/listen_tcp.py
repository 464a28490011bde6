"""Hostile module: Open a listening TCP port (a backdoor), with network declared."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ListenTcp(Hostile):
    """Open a listening TCP port (a backdoor), with network declared."""

    PERMISSIONS = {'network_access': True}

    def attempt(self):
        def go():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen()
            return s.getsockname()[1]
        return outcome(go)
