"""A module that misbehaves on request: memory, CPU, threads, fds, hangs and crashes.

Every misbehaviour uses only what a confined worker keeps (no fork, no files): memory by
touching pages, threads by `threading`, descriptors by `os.dup`.
"""

import asyncio
import os
import re
import threading
import time
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class SupHog(BaseModule):
    """Resource hog for the supervision tests."""

    def __init__(self) -> None:
        super().__init__("sup_hog", "1.0.0")
        self._hoard: list[Any] = []

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": "hog", "author": "tests"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def echo(self, value: Any = None) -> Any:
        return value

    async def pid(self) -> int:
        return os.getpid()

    async def bomb(self, step_mb: int = 8, steps: int = 200, pause: float = 0.01) -> int:
        """Grow resident memory by `step_mb` MiB per step (pages touched, not just reserved)."""
        for _ in range(steps):
            self._hoard.append(b"\x01" * (step_mb << 20))
            await asyncio.sleep(pause)
        return len(self._hoard) * step_mb

    def spin(self, seconds: float = 60.0) -> int:
        """Burn CPU in a thread (a sync method) for `seconds`."""
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
        return n

    async def threads(self, count: int = 100, pause: float = 0.01) -> int:
        """Start `count` threads that park forever."""
        park = threading.Event()
        for _ in range(count):
            threading.Thread(target=park.wait, daemon=True).start()
            await asyncio.sleep(pause)
        return threading.active_count()

    async def fds(self, count: int = 1000, pause: float = 0.005) -> int:
        """Hold `count` more descriptors (stop quietly at EMFILE, keep holding)."""
        for _ in range(count):
            try:
                self._hoard.append(os.dup(1))
            except OSError:
                await asyncio.sleep(60)
            await asyncio.sleep(pause)
        return count

    def hang(self, seconds: float = 60.0) -> None:
        """A sync method stuck in a blocking call (it runs in a worker thread)."""
        time.sleep(seconds)  # HANG-HERE

    async def hang_loop(self, seconds: float = 60.0) -> None:
        """An async method that blocks the event loop (cancel cannot reach it)."""
        time.sleep(seconds)  # LOOP-HANG-HERE  # noqa: ASYNC251 (the point of it)

    async def busy_loop(self, seconds: float = 1.0) -> int:
        """Pure Python CPU on the event loop: busy, but the control thread still answers."""
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
        return n

    async def gil_hog(self) -> None:
        """A catastrophic regex: C code that holds the GIL, so nothing else in the worker runs."""
        re.match(r"(a+)+$", "a" * 64 + "b")

    async def crash(self, code: int = 3) -> None:
        """End the worker process abruptly."""
        os._exit(code)

    async def slow_echo(self, value: Any = None, delay: float = 0.01) -> Any:
        await asyncio.sleep(delay)
        return value

    async def ignore_sigterm(self) -> bool:
        """Make the worker deaf to SIGTERM, so only SIGKILL ends it."""
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return True
