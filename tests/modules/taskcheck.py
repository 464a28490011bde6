"""Task semantics of calls in the worker: what module code sees of asyncio."""

import asyncio
import contextvars
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("taskcheck", default="unset")


class TaskCheckModule(BaseModule):
    """Calls that look at their task, their context and asyncio's timeouts."""

    def __init__(self, name: str = "taskcheck", version: str = "1.0.0"):
        super().__init__(name, version)
        self.waiting: dict[str, asyncio.Task[Any]] = {}

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": "task semantics probe",
            "author": "tests",
        }

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def set_var(self, value: str) -> str:
        """Set a context variable; return what it held before (calls must not share it)."""
        before = _VAR.get()
        _VAR.set(value)
        return before

    async def set_var_then_wait(self, value: str) -> list[str]:
        before = _VAR.get()
        _VAR.set(value)
        await asyncio.sleep(0.01)
        return [before, _VAR.get()]

    async def has_task(self) -> bool:
        return asyncio.current_task() is not None

    async def timeout_now(self) -> str:
        """asyncio.timeout() needs a current task, even for a call that never waits."""
        async with asyncio.timeout(5):  # noqa: ASYNC100 - entering it is the test
            return "ok"

    async def timeout_expires(self) -> str:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    async def park(self, key: str) -> str:
        """Wait until released or cancelled; remember our task so a later call can see it."""
        task = asyncio.current_task()
        assert task is not None
        self.waiting[key] = task
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "cancelled"
        return "slept"

    async def cancel_parked(self, key: str) -> bool:
        return self.waiting.pop(key).cancel()

    async def cancel_myself(self) -> str:
        """Cancel the current task, then return at once without waiting."""
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        return "returned"

    async def echo(self, value: Any = None) -> Any:
        return value

    async def cancel_myself_keep_ref(self) -> str:
        """Cancel the current task and keep it, to cancel it again later while idle."""
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        self.waiting["me"] = task
        return "returned"

    async def cancel_kept(self) -> bool:
        return self.waiting["me"].cancel()
