"""Test module: subscribes to `chat.*` and handles each event a little slowly, keeping nothing
(as a module that relays events to a slower service would); and emits on request."""

import asyncio
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class Sink(BaseModule):
    """Handles `chat.*` events in 10 ms each, keeping only a count; emits on request."""

    def __init__(self) -> None:
        super().__init__("sink")
        self.handled = 0
        self.register_event_handler("chat.*", self.on_chat)

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"description": "slow event sink for tests", "author": "tests"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def on_chat(self, data: Any) -> None:
        await asyncio.sleep(0.01)
        self.handled += 1

    async def get_handled(self) -> int:
        return self.handled

    async def emit_many(self, event: str, count: int, size: int) -> int:
        payload = b"x" * size
        for _ in range(count):
            self.emit_event(event, payload)
            await asyncio.sleep(0)
        return count
