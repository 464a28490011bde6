"""Hostile suite harness: a supervisor with a neighbour module beside every escape attempt.

Each test loads one module from `modules/` (one escape attempt each, in its `attempt()`
method), asserts how the attempt failed, then asserts the supervisor and the neighbour are
unharmed: the neighbour still answers from the same worker process.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plexisandbox import Limits, RestartPolicy, Supervisor
from plexisandbox._handle import ModuleHandle
from plexisandbox._limits import RestartStrategy
from plexisandbox._policy import HostFacts
from plexisandbox.interfaces import ModulePermissions, ModuleState
from tests.conftest import EXAMPLES, skip_or_fail

HOSTILE = Path(__file__).resolve().parent / "modules"
NEIGHBOUR = EXAMPLES / "echo.py"
#: Small limits so that exhaustion attempts hit them within a fraction of a second.
LIMITS = Limits(
    cpu_seconds=1,
    address_space_mb=512,
    memory_mb=1024,
    processes=32,
    open_files=64,
    data_mb=8,
    file_mb=4,
    call_timeout=15,
)
#: Everything a hostile module may declare; the policy confines it to what it declares.
GRANT = ModulePermissions(network_access=True, file_system_access=True)


def require_confinement() -> HostFacts:
    """Skip (or fail under PLEXISANDBOX_MUST_CONFINE=1) unless every layer is available."""
    facts = HostFacts.detect()
    if facts.landlock_abi < 6:
        skip_or_fail(f"Landlock ABI {facts.landlock_abi} < 6 on this kernel")
    if not facts.seccomp:
        skip_or_fail("seccomp filters or libseccomp are unavailable")
    if not facts.is_root and not facts.userns:
        skip_or_fail("not root and no user namespaces")
    return facts


@dataclass
class Arena:
    sup: Supervisor
    neighbour: ModuleHandle
    neighbour_pid: int
    data_root: Path

    async def load(self, module: str, **kwargs: Any) -> ModuleHandle:
        kwargs.setdefault("grant", GRANT)
        # The kernel layers are under test here, not the static contract check (which flags
        # many of these modules before they run): load them anyway.
        kwargs.setdefault("validate", False)
        kwargs.setdefault("limits", LIMITS)
        handle = await self.sup.load(HOSTILE / f"{module}.py", name=module, **kwargs)
        await handle.start()
        return handle

    async def attempt(self, module: str, **kwargs: Any) -> Any:
        handle = await self.load(module)
        return await handle.call("attempt", **kwargs)


@asynccontextmanager
async def arena(tmp_path: Path) -> AsyncIterator[Arena]:
    """A supervisor with the neighbour running; afterwards assert both are unharmed."""
    require_confinement()
    data_root = tmp_path / "data"
    async with Supervisor(
        data_root=data_root, restart=RestartPolicy(strategy=RestartStrategy.TEMPORARY)
    ) as sup:
        neighbour = await sup.load(NEIGHBOUR, name="neighbour")
        await neighbour.start()
        started_pid = neighbour.pid
        assert started_pid is not None
        yield Arena(sup, neighbour, started_pid, data_root)
        # The supervisor is alive (this code runs in it) and still serves: the neighbour
        # answers, from the very same worker process, and its health check passes.
        assert neighbour.state is ModuleState.ACTIVE
        assert neighbour.pid == started_pid
        assert await neighbour.call("echo", value={"still": "here"}) == {"still": "here"}
        assert (await neighbour.health_check()) is not None
        os.kill(started_pid, 0)


def denied(result: Any, errno_name: str) -> None:
    """The attempt failed with exactly this errno."""
    assert isinstance(result, dict), result
    assert result.get("ok") is False, f"the attempt succeeded: {result!r}"
    assert result.get("errno") == errno_name, result
