"""A module whose first start succeeds and every later initialize() refuses: the restarts
after a crash all fail in initialize(), with a live worker each time."""

import os
from typing import Any

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions

_MARK = "booted-once"


def _first_boot(mark: str) -> bool:
    """True the first time, leaving `mark` behind; False ever after."""
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class SupSecondBoot(BaseModule):
    """initialize() returns False once its data folder holds the mark of an earlier start."""

    def __init__(self) -> None:
        super().__init__("sup_second_boot", "1.0.0")

    def get_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": "fails every initialize() after the first",
            "author": "tests",
        }

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions(capabilities=[ModuleCapability.FILE_SYSTEM_ACCESS])

    async def initialize(self) -> bool:
        return _first_boot(os.path.join(self.data_dir or "/nonexistent", _MARK))

    async def crash(self) -> None:
        os._exit(9)
