"""The guide's `ExampleModule`, as written in module-interfaces-guide.md, with a small fake
`APIClient` so it runs offline (the guide leaves the client to the reader)."""

import asyncio
from typing import Any, Dict

from plexichat.infrastructure.modules.interfaces import (
    BaseModule,
    ModuleCapability,
    ModulePermissions,
)


class APIClient:
    """A stand-in for a real HTTP client: connects instantly, answers locally."""

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.connected = False

    async def connect(self) -> None:
        """Pretend to open a connection."""
        await asyncio.sleep(0)
        self.connected = True

    async def disconnect(self) -> None:
        """Pretend to close the connection."""
        self.connected = False

    async def is_connected(self) -> bool:
        """Whether connect() ran and disconnect() did not."""
        return self.connected


class ExampleModule(BaseModule):
    """The guide's complete example module."""

    def __init__(self, name: str = "ExampleModule", version: str = "1.0.0"):
        super().__init__(name, version)
        self.api_client = None

    async def initialize(self) -> bool:
        """Initialize the module"""
        try:
            self.logger.info("Initializing Example Module")

            # Setup API client
            api_key = self.configuration.custom_config.get("api_key")
            if not api_key:
                self.logger.error("API key not configured")
                return False

            self.api_client = APIClient(api_key)
            await self.api_client.connect()

            self.logger.info("Example Module initialized successfully")
            return True
        except Exception as e:
            self.last_error = e
            self.logger.error(f"Initialization failed: {e}")
            return False

    async def shutdown(self) -> bool:
        """Shutdown the module"""
        try:
            if self.api_client:
                await self.api_client.disconnect()
            return True
        except Exception as e:
            self.logger.error(f"Shutdown error: {e}")
            return False

    def get_metadata(self) -> Dict[str, Any]:
        """Get module metadata"""
        return {
            "name": self.name,
            "version": self.version,
            "description": "Example module demonstrating best practices",
            "author": "PlexiChat Team",
            "capabilities": ["external_api", "data_processing"]
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Get required permissions"""
        return ModulePermissions(
            capabilities=[ModuleCapability.EXTERNAL_API],
            network_access=True,
            external_api_access=True
        )

    def get_config_schema(self) -> Dict[str, Any]:
        """Get configuration schema"""
        return {
            "type": "object",
            "properties": {
                "api_key": {
                    "type": "string",
                    "minLength": 1,
                    "description": "API key for external service"
                },
                "timeout": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 300,
                    "default": 30,
                    "description": "Request timeout in seconds"
                }
            },
            "required": ["api_key"]
        }

    async def health_check(self) -> Dict[str, Any]:
        """Perform health check"""
        health = await super().health_check()

        # Add module-specific health info
        if self.api_client:
            health["api_connected"] = await self.api_client.is_connected()

        return health
