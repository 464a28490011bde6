# EXPECT: interface.no-module-class interface_compliance
# ruff: noqa
"""Broken module for the validator's corpus: the class does not subclass BaseModule."""

from typing import Any, Dict

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions


class Broken:
    """Looks like a module, but is not a BaseModule."""

    async def initialize(self) -> bool:
        """Set up."""
        return True
