"""Test module inside a package; it imports a sibling module of its package."""

from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions

from .helper import GREETING


class PkgModule(BaseModule):
    def __init__(self) -> None:
        super().__init__("pkgmod", "2.0.0")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"description": "a module inside a package"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def hello(self, who: str = "world") -> str:
        return f"{GREETING}, {who} from {__name__}"
