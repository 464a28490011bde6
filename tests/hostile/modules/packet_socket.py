"""Hostile module: An AF_PACKET socket: sniff every frame on the host."""

import socket

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class PacketSocket(Hostile):
    """An AF_PACKET socket: sniff every frame on the host."""

    def attempt(self):
        return outcome(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300))
