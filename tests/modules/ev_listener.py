"""Test module: subscribes to events in __init__, records them, replies and calls services."""

import asyncio
import contextvars
import sys
from typing import Any

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("MARK", default="unset")


class Listener(BaseModule):
    """Records `chat.*` events in order; optionally slow; emits a reply per event."""

    def __init__(self) -> None:
        super().__init__("listener")
        self.seen: list[Any] = []
        self.delay = 0.0
        self.register_event_handler("chat.*", self.on_chat)
        self.register_event_handler("user.login", self.on_login)
        self.register_event_handler("boom", self.on_boom)
        self.register_event_handler("careless.cancel", self.on_careless_cancel)
        self.register_event_handler("careless.exit", self.on_careless_exit)
        self.register_event_handler("careless.mark", self.on_careless_mark)

    async def initialize(self) -> bool:
        self.delay = float(self.configuration.custom_config.get("delay", 0.0))
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"description": "event listener for tests", "author": "tests"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def on_chat(self, data: Any) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.seen.append(data)
        self.emit_event("listener.saw", {"module": self.name, "data": data})

    async def on_login(self, data: Any) -> None:
        self.seen.append({"login": data})

    def on_boom(self, data: Any) -> None:
        raise RuntimeError("handler exploded")

    async def on_careless_cancel(self, data: Any) -> None:
        # Awaits a task it cancelled without catching the CancelledError.
        task = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task

    async def on_careless_exit(self, data: Any) -> None:
        sys.exit(1)

    async def on_careless_mark(self, data: Any) -> None:
        self.seen.append({"mark": MARK.get()})
        MARK.set(str(data))
        await asyncio.sleep(0)

    async def get_seen(self) -> list[Any]:
        return self.seen

    async def send(self, text: str) -> Any:
        return await self.host.call("messages.send", room="general", text=text)

    async def call_other(self, target: str, method: str, **kwargs: Any) -> Any:
        # An argument called `method` must not collide with call_method(method, ...).
        return await self.host.call_module(target, method, **kwargs)

    async def bounce(self, target: str, back: str, depth: int) -> int:
        """A→B→A: call `target`.bounce, which calls `back`, until depth reaches 0."""
        if depth <= 0:
            return 0
        return 1 + await self.host.call_module(
            target, "bounce", target=back, back=target, depth=depth - 1
        )


class Messenger(Listener):
    """The same listener, declaring MESSAGING (so it may call messages.send)."""

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions(capabilities=[ModuleCapability.MESSAGING])
