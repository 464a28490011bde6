"""Worker side: blocking frame I/O on the channel's pipes, shared by every worker thread."""

from __future__ import annotations

import os
import threading
from typing import Any

from plexisandbox._protocol import FrameDecoder, encode

__all__ = ["BlockingReader", "FrameWriter"]


class FrameWriter:
    """Writes whole frames to the worker→host pipe; a lock keeps frames from interleaving.

    The event loop, the control thread and the logging handler all send; the pipe is in
    blocking mode, so a frame is written completely before the lock is released.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        self.send_frame(encode(message))

    def send_frame(self, frame: bytes) -> None:
        view = memoryview(frame)
        with self._lock:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]


class BlockingReader:
    """Reads messages one at a time during the bootstrap, before the event loop runs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.decoder = FrameDecoder()
        self._ready: list[Any] = []

    def next(self) -> Any:
        """The next message; raises EOFError when the host closed the pipe."""
        while not self._ready:
            data = os.read(self.fd, 1 << 16)
            if not data:
                raise EOFError("the supervisor closed the channel")
            self._ready.extend(self.decoder.feed(data))
        return self._ready.pop(0)

    def leftover(self) -> list[Any]:
        """Messages already decoded but not consumed (handed to the serve loop)."""
        out, self._ready = self._ready, []
        return out
