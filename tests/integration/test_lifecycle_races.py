"""Lifecycle under races and failed restarts: no worker outlives its module's state."""

from __future__ import annotations

import inspect
import sys

import anyio
import psutil
import pytest

from plexisandbox import RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import IllegalTransition, ModuleUnavailable, SandboxError, WorkerCrashed
from plexisandbox.interfaces import ModuleCapability, ModulePermissions, ModuleState
from tests.conftest import TEST_MODULES, until

pytestmark = pytest.mark.anyio
SECOND_BOOT = TEST_MODULES / "sup_second_boot.py"
FILES = ModulePermissions(capabilities=[ModuleCapability.FILE_SYSTEM_ACCESS])


def _workers() -> list[psutil.Process]:
    """This process's live (not zombie) children: the launched workers."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


async def test_restarts_failing_in_initialize_leave_no_worker_behind() -> None:
    policy = RestartPolicy(
        strategy=RestartStrategy.PERMANENT, max_restarts=2, backoff_initial=0.05, jitter=0.0
    )
    async with Supervisor(zygote=False, restart=policy, grant=FILES) as sup:
        mod = await sup.load(SECOND_BOOT)
        await mod.start()
        with pytest.raises(WorkerCrashed):
            await mod.call("crash")
        await until(lambda: mod.state is ModuleState.FAILED, timeout=20)
        assert mod.stats().restarts == 2
        assert mod.pid is None
        await anyio.sleep(0.3)
        assert _workers() == []


SLOW = TEST_MODULES / "slow_import.py"


async def test_unload_while_loading_ends_the_load_and_its_worker() -> None:
    async with Supervisor(zygote=False) as sup:
        outcome: list[BaseException | object] = []

        async def load() -> None:
            try:
                outcome.append(await sup.load(SLOW))
            except SandboxError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            await until(lambda: "slow_import" in sup.modules)
            handle = sup.modules["slow_import"]
            await until(lambda: handle.state is ModuleState.LOADING)
            with anyio.fail_after(10):
                await sup.unload("slow_import")
        assert handle.state is ModuleState.UNLOADED
        assert isinstance(outcome[0], ModuleUnavailable), outcome
        assert "slow_import" in str(outcome[0])
        assert handle.pid is None
        await anyio.sleep(0.3)
        assert _workers() == []


async def test_shutdown_during_an_operator_restart_leaves_the_module_unloaded() -> None:
    async with Supervisor(zygote=False) as sup:
        handle = await sup.load(SLOW)
        await handle.start()
        outcome: list[BaseException | None] = []

        async def restart() -> None:
            try:
                await handle.restart()
                outcome.append(None)
            except SandboxError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(restart)
            await until(lambda: handle.state is ModuleState.LOADING)
            with anyio.fail_after(10):
                await handle.shutdown()
        assert isinstance(outcome[0], ModuleUnavailable), outcome
        await anyio.sleep(0.3)
        assert handle.state is ModuleState.UNLOADED
        assert handle.pid is None
        assert _workers() == []


async def test_two_concurrent_restarts_leave_one_worker() -> None:
    async with Supervisor(zygote=False) as sup:
        handle = await sup.load(SLOW)
        await handle.start()
        refused: list[BaseException] = []

        async def restart() -> None:
            try:
                await handle.restart()
            except IllegalTransition as exc:
                refused.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(restart)
            tg.start_soon(restart)
        assert len(refused) == 1
        assert handle.state is ModuleState.ACTIVE
        assert [w.pid for w in _workers()] == [handle.pid]
        assert await handle.call("echo", value=1) == 1


async def test_restart_attempts_do_not_nest_without_bound() -> None:
    # A period shorter than the backoff never gives up (as configured); each failed attempt
    # must not leave a frame behind, or ~1000 of them (hours, in production) end in a
    # RecursionError that escapes into the supervisor's task group. A low recursion limit
    # makes a hundred attempts enough to tell.
    policy = RestartPolicy(
        strategy=RestartStrategy.PERMANENT,
        max_restarts=1,
        period=0.001,
        backoff_initial=0.001,
        backoff_max=0.001,
        jitter=0.0,
    )
    async with Supervisor(zygote=False, restart=policy, grant=FILES) as sup:
        mod = await sup.load(SECOND_BOOT)
        await mod.start()
        with pytest.raises(WorkerCrashed):
            await mod.call("crash")
        limit = sys.getrecursionlimit()
        # Above this test's own depth; the restarting task starts far shallower.
        sys.setrecursionlimit(len(inspect.stack(0)) + 40)
        try:
            await until(lambda: mod.stats().restarts >= 100, timeout=60)
        finally:
            sys.setrecursionlimit(limit)
        await mod.shutdown()
