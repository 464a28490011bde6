"""Test module for `plexisandbox bench MODULE`: its method refuses to run in the host."""

import os
import sys
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class BenchWhere(BaseModule):
    """`where()` answers only inside a worker (which never imports anyio or the supervisor)."""

    def __init__(self) -> None:
        super().__init__("bench_where", "1.0.0")

    async def initialize(self) -> bool:
        """Nothing to set up."""
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {"description": "bench test module", "author": "tests"}

    def get_required_permissions(self) -> ModulePermissions:
        """Needs nothing."""
        return ModulePermissions()

    async def where(self, n: int = 1) -> int:
        """The pid, if this runs in a worker; raises in the host."""
        if "anyio" in sys.modules or "plexisandbox._supervisor" in sys.modules:
            raise RuntimeError("module code ran in the host")
        return os.getpid() * n
