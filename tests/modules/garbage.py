"""Test module: a hostile worker that writes bytes outside the protocol onto its channel.

It finds the worker→host pipe the way an attacker would: the only write-only pipe besides
stdout and stderr. `send(kind)` writes one kind of bad frame and then waits, so what the host
sees is exactly that frame.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
import struct
from typing import Any

import msgpack

from plexisandbox.interfaces import BaseModule, ModulePermissions


def channel_fd() -> int:
    """The worker→host data pipe: a write-only FIFO that is not stdout or stderr."""
    for fd in range(3, 256):
        try:
            mode = os.fstat(fd).st_mode
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
    raise RuntimeError("no channel found")


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# Each kind: the bytes written, and a fragment of the reason the host must record.
GARBAGE: dict[str, tuple[bytes, str]] = {
    # A header announcing 2 GiB: must be refused before any body arrives (none ever does).
    "oversized_header": (struct.pack(">I", 2**31), "announced"),
    # A header just above the host's limit for this module, with the body following.
    "oversized_frame": (frame(msgpack.packb([35, 1, "x" * 70_000])), "announced"),
    # 0xc1 is the one byte msgpack never uses.
    "undecodable": (frame(b"\xc1\xc1\xc1"), "undecodable"),
    "random_bytes": (frame(bytes(range(256)) * 4), ""),
    "ext_type": (frame(msgpack.packb([35, 1, msgpack.ExtType(5, b"boom")])), "ext type"),
    "not_an_array": (frame(msgpack.packb(42)), "must be an array"),
    "unknown_op": (frame(msgpack.packb([99, 1])), "unknown"),
    "host_op": (frame(msgpack.packb([3, 1, "echo", {}])), "out-of-direction"),
    "wrong_arity": (frame(msgpack.packb([35, 1])), "needs 2 fields"),
    "wrong_type": (frame(msgpack.packb([35, "one", None])), "must be int"),
    "bool_as_id": (frame(msgpack.packb([35, True, None])), "must be int"),
    "too_deep": (frame(msgpack.packb([35, 1, _nested(200)])), "nest"),
    "handshake_again": (frame(msgpack.packb([32, {"wire": 1}])), "out of order"),
}


class Garbage(BaseModule):
    """Writes one kind of garbage frame to its channel on request."""

    def __init__(self) -> None:
        super().__init__("garbage")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"description": "writes garbage frames"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def send(self, kind: str) -> None:
        data, _ = GARBAGE[kind]
        fd = channel_fd()
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        await asyncio.sleep(30)  # the host kills us long before this ends

    async def echo(self, value: Any = None) -> Any:
        return value
