"""Hostile module: A netlink socket: talk to the kernel's routing and audit."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class NetlinkSocket(Hostile):
    """A netlink socket: talk to the kernel's routing and audit."""

    def attempt(self):
        return outcome(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
