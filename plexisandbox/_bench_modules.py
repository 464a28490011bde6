"""Worker side: the small modules `plexisandbox bench` loads (by path, `_bench_modules.py:Class`).

They ship inside the package so that the suite runs from an installed wheel as well as from a
checkout; the package folder is on every worker's read-only path list anyway. Imports only the
pure core.
"""

from __future__ import annotations

import os
import time
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions

__all__ = ["BenchEcho", "BenchListener", "BenchProbe"]


class BenchEcho(BaseModule):
    """Echoes its argument: the smallest call there is."""

    def __init__(self, name: str = "bench_echo", version: str = "1.0.0") -> None:
        super().__init__(name, version)

    async def initialize(self) -> bool:
        """Nothing to set up."""
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {
            "name": self.name,
            "version": self.version,
            "description": "benchmark echo",
            "author": "plexisandbox",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Needs nothing."""
        return ModulePermissions()

    async def echo(self, value: Any = None) -> Any:
        """Return `value` unchanged."""
        return value


class BenchProbe(BenchEcho):
    """Echo, plus timed loops of raw syscalls inside the worker: what confinement costs per
    syscall (the seccomp filter runs on every one, Landlock on every path lookup)."""

    async def syscalls(self, n: int = 100_000) -> dict[str, float]:
        """Nanoseconds per `getppid()` (filter only) and per `stat()` (filter + Landlock)."""
        began = time.perf_counter_ns()
        for _ in range(n):
            os.getppid()
        ppid = (time.perf_counter_ns() - began) / n
        stats = max(1, n // 10)
        began = time.perf_counter_ns()
        for _ in range(stats):
            os.stat(os.__file__)
        return {"getppid_ns": ppid, "stat_ns": (time.perf_counter_ns() - began) / stats}


class BenchListener(BenchEcho):
    """Counts `bench.*` events, so the host can tell when a burst has been handled."""

    def __init__(self, name: str = "bench_listener", version: str = "1.0.0") -> None:
        super().__init__(name, version)
        self.seen = 0
        self.register_event_handler("bench.*", self.on_bench)

    async def on_bench(self, data: Any) -> None:
        """One event handled."""
        self.seen += 1

    async def count(self) -> int:
        """Events handled so far."""
        return self.seen
