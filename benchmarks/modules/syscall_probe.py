"""Benchmark module: echo, and timed loops of raw syscalls inside the worker (confinement's
per-syscall cost: the seccomp filter on every call, Landlock on every path lookup)."""

import os
import time
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class SyscallProbe(BaseModule):
    """Echo plus syscall timing loops."""

    def __init__(self, name: str = "syscall_probe", version: str = "1.0.0"):
        super().__init__(name, version)

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version,
                "description": "benchmark probe", "author": "plexisandbox"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def echo(self, value: Any = None) -> Any:
        return value

    async def syscalls(self, n: int = 100_000) -> dict[str, float]:
        """Nanoseconds per getppid() (filter only) and per stat() of a library (filter +
        Landlock path check)."""
        began = time.perf_counter_ns()
        for _ in range(n):
            os.getppid()
        ppid = (time.perf_counter_ns() - began) / n
        began = time.perf_counter_ns()
        for _ in range(n // 10):
            os.stat(os.__file__)
        st = (time.perf_counter_ns() - began) / (n // 10)
        return {"getppid_ns": ppid, "stat_ns": st}
