"""The guide's `MyModule`, exactly as written in module-interfaces-guide.md (imports added)."""

from typing import Any, Dict

from plexichat.infrastructure.modules.interfaces import (
    BaseModule,
    ModuleCapability,
    ModulePermissions,
)


class MyModule(BaseModule):
    """The smallest complete module of the guide."""

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
