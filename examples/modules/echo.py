"""Echo: returns what it is given — the smallest useful module, used by tests and benchmarks."""

from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class EchoModule(BaseModule):
    """Echoes its arguments back."""

    def __init__(self, name: str = "echo", version: str = "1.0.0"):
        super().__init__(name, version)

    async def initialize(self) -> bool:
        """Nothing to set up."""
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {"name": self.name, "version": self.version,
                "description": "Echoes its arguments", "author": "plexisandbox"}

    def get_required_permissions(self) -> ModulePermissions:
        """Needs nothing."""
        return ModulePermissions()

    async def echo(self, value: Any = None) -> Any:
        """Return `value` unchanged."""
        return value

    def echo_sync(self, value: Any = None) -> Any:
        """Return `value` unchanged, from a sync method (runs in a worker thread)."""
        return value
