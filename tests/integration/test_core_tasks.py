"""Calls run in the worker with asyncio's usual guarantees (asyncio and trio hosts).

The worker runs calls that never wait back to back in one resident task instead of a task
each (worker/serve.py); these tests pin what module code must still see: a current task,
a context of its own per call, timeouts that work, and a task per waiting call that
cancelling cancels.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from plexisandbox import ModuleHandle, Supervisor
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.anyio


@pytest.fixture
async def taskcheck() -> AsyncIterator[ModuleHandle]:
    async with Supervisor() as sup:
        handle = await sup.load(TEST_MODULES / "taskcheck.py")
        await handle.start()
        yield handle


async def test_every_call_has_a_current_task(taskcheck: ModuleHandle) -> None:
    assert await taskcheck.call("has_task") is True
    assert await taskcheck.call("timeout_now") == "ok"
    assert await taskcheck.call("timeout_expires") == "timed out"


async def test_context_variables_do_not_leak_between_calls(taskcheck: ModuleHandle) -> None:
    assert await taskcheck.call("set_var", value="a") == "unset"
    assert await taskcheck.call("set_var", value="b") == "unset"
    # A call that waits keeps its own context across the wait.
    assert await taskcheck.call("set_var_then_wait", value="c") == ["unset", "c"]
    results = []
    async with anyio.create_task_group() as tg:
        for i in range(50):

            async def one(i: int = i) -> None:
                results.append(await taskcheck.call("set_var", value=str(i)))

            tg.start_soon(one)
    assert results == ["unset"] * 50


async def test_a_waiting_call_owns_its_task(taskcheck: ModuleHandle) -> None:
    async with anyio.create_task_group() as tg:
        outcome: list[str] = []

        async def parked() -> None:
            outcome.append(await taskcheck.call("park", key="p"))

        tg.start_soon(parked)
        await anyio.sleep(0.2)
        # Other calls run meanwhile, and cancelling the parked call's task cancels that call
        # only.
        assert await taskcheck.call("echo", value=1) == 1
        assert await taskcheck.call("cancel_parked", key="p") is True
    assert outcome == ["cancelled"]
    assert await taskcheck.call("echo", value=2) == 2


async def test_a_call_that_cancels_its_own_task_does_not_stop_the_worker(
    taskcheck: ModuleHandle,
) -> None:
    for _ in range(3):
        assert await taskcheck.call("cancel_myself") == "returned"
        assert await taskcheck.call("echo", value="still here") == "still here"
    results = []
    async with anyio.create_task_group() as tg:
        for i in range(20):

            async def one(i: int = i) -> None:
                results.append(await taskcheck.call("echo", value=i))

            tg.start_soon(one)
    assert sorted(results) == list(range(20))


async def test_a_self_cancelled_call_does_not_cancel_the_next_one(taskcheck: ModuleHandle) -> None:
    """The two calls arrive in one read: the second waits, and must not inherit the
    cancellation the first one requested of its own task."""
    async with anyio.create_task_group() as tg:
        outcome: list[str] = []

        async def first() -> None:
            outcome.append(await taskcheck.call("cancel_myself"))

        async def second() -> None:
            outcome.append(await taskcheck.call("timeout_expires"))

        tg.start_soon(first)
        tg.start_soon(second)
    assert sorted(outcome) == ["returned", "timed out"]
    # An old task reference cancelled again later (now idle or finished) harms nobody.
    assert await taskcheck.call("cancel_myself_keep_ref") == "returned"
    await taskcheck.call("cancel_kept")
    assert await taskcheck.call("set_var_then_wait", value="x") == ["unset", "x"]
    assert await taskcheck.call("echo", value=3) == 3
