"""A module whose worker dies shortly after every start(): a crash loop."""

import asyncio
import os
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class SupCrashLoop(BaseModule):
    """Crashes 50 ms after start()."""

    def __init__(self) -> None:
        super().__init__("sup_crashloop", "1.0.0")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": "crash loop",
            "author": "tests",
        }

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def start(self) -> bool:
        asyncio.get_running_loop().call_later(0.05, os._exit, 7)
        return await super().start()

    async def echo(self, value: Any = None) -> Any:
        return value
