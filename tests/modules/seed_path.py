# ruff: noqa: UP035, UP006
"""Test module: the guide's `MyModule`, written against the seed's own import path.

Only the `typing` import is added (the guide's snippet uses `Dict` and `Any` without it) and
one API method, so a test can call it.
"""

# fmt: off
from typing import Any, Dict

from plexichat.infrastructure.modules.interfaces import (
    BaseModule,
    ModuleCapability,
    ModulePermissions,
    ModuleState,
)


class MyModule(BaseModule):
    def __init__(self, name: str = "MyModule", version: str = "1.0.0"):
        super().__init__(name, version)

    async def initialize(self) -> bool:
        """Initialize the module - REQUIRED"""
        # Your initialization logic here
        return True

    def get_metadata(self) -> Dict[str, Any]:
        """Get module metadata - REQUIRED"""
        return {
            "name": self.name,
            "version": self.version,
            "description": "My custom module",
            "author": "Your Name"
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Define required permissions - REQUIRED"""
        return ModulePermissions(
            capabilities=[ModuleCapability.MESSAGING],
            network_access=False,
            database_access=True
        )

    async def whoami(self) -> Dict[str, Any]:
        """Report which contract module this class was built on."""
        import plexisandbox.interfaces as ours

        return {
            "base": f"{BaseModule.__module__}.{BaseModule.__qualname__}",
            "same_contract": BaseModule is ours.BaseModule,
            "state": self.state.value,
            "states": len(ModuleState),
        }
