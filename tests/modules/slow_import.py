"""A module that takes a second to import: a window in which its load is under way."""

import time
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions

time.sleep(1.0)


class SlowImport(BaseModule):
    """Plain module; only its import is slow."""

    def __init__(self) -> None:
        super().__init__("slow_import", "1.0.0")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": "slow import"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def echo(self, value: Any = None) -> Any:
        return value
