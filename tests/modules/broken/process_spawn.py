# EXPECT: security.process-spawn security_compliance
# ruff: noqa
"""Broken module for the validator's corpus: starts a subprocess."""

import subprocess  # <- defect
from typing import Any, Dict

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions


class Broken(BaseModule):
    """A module with exactly one defect."""

    def __init__(self, name: str = "broken", version: str = "1.0.0"):
        super().__init__(name, version)

    async def initialize(self) -> bool:
        """Set up."""
        return True

    def get_metadata(self) -> Dict[str, Any]:
        """Describe the module."""
        return {
            "name": self.name,
            "version": self.version,
            "description": "A broken module",
            "author": "plexisandbox tests",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Declare what the module needs."""
        return ModulePermissions()

    def uptime(self) -> str:
        """Ask the system for its uptime."""
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout
