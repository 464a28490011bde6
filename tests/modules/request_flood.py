"""Test module: a hostile worker that sends host-service requests as fast as it can.

It writes REQUEST frames through the worker's own writer (so frames stay whole) for request
ids it never waits on, each one the host will refuse: a flood the host must answer without
writing a traceback into its log per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from plexisandbox._protocol import Op
from plexisandbox.interfaces import BaseModule, ModulePermissions


class RequestFlood(BaseModule):
    """Floods the host with failing requests; asks one properly to see the answer."""

    def __init__(self) -> None:
        super().__init__("request_flood")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"description": "floods the host with failing requests"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def flood(self, kind: str, target: str, kwargs: dict[Any, Any], seconds: float) -> int:
        runtime: Any = BaseModule._runtime
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        sent = 0
        while loop.time() < end:
            for _ in range(100):
                sent += 1
                runtime.writer.send([Op.REQUEST, 1 << 40 | sent, kind, target, "echo", kwargs])
            await asyncio.sleep(0.001)
        return sent

    async def ask(self, kind: str, target: str, kwargs: dict[Any, Any]) -> str:
        runtime: Any = BaseModule._runtime
        try:
            await runtime._request(kind, target, "echo", kwargs)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "answered"
