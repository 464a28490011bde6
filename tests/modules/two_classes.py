"""Test module: two module classes in one file; load it as `two_classes.py:Second`."""

from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class _Common(BaseModule):
    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def which(self) -> str:
        return type(self).__name__


class First(_Common):
    def __init__(self) -> None:
        super().__init__("first")


class Second(_Common):
    def __init__(self) -> None:
        super().__init__("second")
