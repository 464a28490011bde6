"""Test module: writes a garbage frame onto its channel while being imported (before READY)."""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import time
from typing import Any

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


os.write(channel_fd(), struct.pack(">I", 3) + b"\xc1\xc1\xc1")
time.sleep(10)  # killed by the host before this ends


class NeverReady(BaseModule):
    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()
