"""Worker side: blocking frame I/O on the channel's pipes, shared by every worker thread."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from plexisandbox._protocol import FrameDecoder, encode

__all__ = ["BlockingReader", "FrameWriter"]


class FrameWriter:
    """Writes whole frames to the worker→host pipe; a lock keeps frames from interleaving.

    The event loop, the control thread and the logging handler all send; the pipe is in
    blocking mode, so a frame is written completely before the lock is released.

    Frames sent from the event loop's thread are batched: collected during one pass of the
    loop and written with one syscall at its end (`bind_loop`). Sixty-four answers that
    complete in the same pass cost one write, not sixty-four; their order is kept.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._batch: list[bytes] = []
        self._scheduled = False  # a flush at the end of this loop pass is already due
        self.held = False  # the runner flushes itself when its queue is empty: no pass due

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Batch frames sent from `loop`'s thread until the end of each loop pass."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def send(self, message: Any) -> None:
        self.send_frame(encode(message))

    def send_frame(self, frame: bytes) -> None:
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            if not self._scheduled and not self.held:
                self._scheduled = True
                self._loop.call_soon(self.flush)
            self._batch.append(frame)
            return
        self._write(frame)

    def send_now(self, frame: bytes) -> None:
        """Write at once (after anything already batched, to keep the order)."""
        if self._batch:
            self._batch.append(frame)
            self.flush()
        else:
            self._write(frame)

    def flush(self) -> None:
        """Write the frames batched so far (called by the loop; safe to call any time)."""
        self._scheduled = False
        if self._batch:
            data = b"".join(self._batch) if len(self._batch) > 1 else self._batch[0]
            self._batch.clear()
            self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
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
