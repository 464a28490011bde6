"""Hostile module: a start-up description naming a million methods.

What the worker reports in READY is module output: module code runs in the worker before
`describe()` does, and replaces it. The host validates the description on load(): one report
item (or two) per method named.
"""

import sys

from plexisandbox.interfaces import BaseModule, ModulePermissions

_worker = sys.modules["plexisandbox_worker.main"]
_describe = _worker.describe


def _flood(module):
    description = _describe(module)
    description["methods"] = [f"_{i:x}" for i in range(1_000_000)]  # ~7 MiB, one container
    return description


_worker.describe = _flood


class MethodFlood(BaseModule):
    """Says it has a million methods."""

    def __init__(self, name="method_flood", version="1.0.0"):
        super().__init__(name, version)

    async def initialize(self):
        return True

    def get_metadata(self):
        return {"name": self.name, "version": self.version, "description": "method flood",
                "author": "plexisandbox tests"}

    def get_required_permissions(self):
        return ModulePermissions()
