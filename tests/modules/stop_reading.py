"""Hostile module: stops reading its channel, then has the host queue frames for it:
the answers of module calls to another module's echo() with large arguments."""

import asyncio

from plexisandbox._protocol import Op
from plexisandbox.interfaces import BaseModule, ModulePermissions


class StopReading(BaseModule):
    def __init__(self):
        super().__init__("stop_reading", "1.0.0")

    async def initialize(self):
        return True

    def get_metadata(self):
        return {"description": "stops reading its channel", "author": "review"}

    def get_required_permissions(self):
        return ModulePermissions()

    async def echo(self, value=None):
        return value

    async def attack(self, target: str = "neighbour", calls: int = 12, size: int = 8 << 20):
        runtime = BaseModule._runtime
        payload = b"x" * size

        async def later():
            await asyncio.sleep(0.2)  # this call's answer is on its way first
            asyncio.get_running_loop().remove_reader(runtime.fd_in)  # frames pile up
            for i in range(calls):
                runtime.writer.send(
                    [Op.REQUEST, 1 << 40 | i, "module", target, "echo", {"value": payload}]
                )

        self._attack = asyncio.get_running_loop().create_task(later())
        return calls
