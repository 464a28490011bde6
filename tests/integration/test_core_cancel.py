"""Deadlines and cancellation reach the worker (asyncio and trio)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import plexisandbox._worker
from plexisandbox import Limits, ModuleHandle, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import CallTimeout, WorkerCrashed
from plexisandbox.interfaces import ModuleState
from tests.conftest import TEST_MODULES, until

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"


@pytest.fixture
async def probe() -> AsyncIterator[ModuleHandle]:
    async with Supervisor(restart=RestartPolicy(strategy=RestartStrategy.TEMPORARY)) as sup:
        handle = await sup.load(PROBE)
        await handle.start()
        yield handle


@pytest.fixture
def short_cancel_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """A worker gets this long to honour a cancel before it is killed (2 s by default)."""
    monkeypatch.setattr(plexisandbox._worker, "_CANCEL_GRACE", 0.4)
    return 0.4


async def _tokens(probe: ModuleHandle) -> dict[str, list[str]]:
    return await probe.call("tokens")  # type: ignore[no-any-return]


async def test_timeout_raises_call_timeout_and_cancels_in_the_worker(probe: ModuleHandle) -> None:
    pid = probe.pid
    with pytest.raises(CallTimeout) as info:
        await probe.call("sleep", seconds=30, token="t1", timeout=0.3)
    err = info.value
    assert err.method == "sleep"
    assert err.timeout == 0.3
    assert err.module == "probe"
    assert "within 0.3s" in str(err)
    # The module saw the cancellation: CancelledError was raised inside its coroutine.
    await until(lambda: _has(probe, "cancelled", "t1"))
    assert "t1" not in (await _tokens(probe))["finished"]
    assert probe.stats().timeouts == 1
    assert probe.pid == pid  # cancelling a call does not cost the worker
    assert await probe.call("echo", value="after") == "after"


async def _has(probe: ModuleHandle, kind: str, token: str) -> bool:
    return token in (await _tokens(probe))[kind]


async def test_cancelling_the_awaiting_task_cancels_the_call_in_the_worker(
    probe: ModuleHandle,
) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(lambda i=i: probe.call("sleep", seconds=60, token=f"c{i}", timeout=120))
        await until(lambda: _all_started(probe, 20))
        assert probe.stats().in_flight == 20
        tg.cancel_scope.cancel()
    assert probe.stats().in_flight == 0
    await until(lambda: _count(probe, "cancelled", 20))
    assert sorted((await _tokens(probe))["cancelled"]) == sorted(f"c{i}" for i in range(20))
    assert probe.stats().timeouts == 0


async def _all_started(probe: ModuleHandle, n: int) -> bool:
    return len((await _tokens(probe))["started"]) >= n


async def _count(probe: ModuleHandle, kind: str, n: int) -> bool:
    return len((await _tokens(probe))[kind]) >= n


async def test_move_on_after_around_a_call_cancels_it_in_the_worker(probe: ModuleHandle) -> None:
    with anyio.move_on_after(0.2) as scope:
        await probe.call("sleep", seconds=30, token="m1", timeout=60)
    assert scope.cancelled_caught
    await until(lambda: _has(probe, "cancelled", "m1"))


async def test_worker_ignoring_a_cancel_is_killed_after_the_grace(
    probe: ModuleHandle, short_cancel_grace: float
) -> None:
    with pytest.raises(CallTimeout):
        await probe.call("stubborn", seconds=60, token="s1", timeout=0.2)
    await until(lambda: probe.state is ModuleState.FAILED, timeout=short_cancel_grace + 10)
    last_exit = probe.stats().last_exit
    assert last_exit is not None
    assert last_exit.cause == "unresponsive"
    assert "cancel" in last_exit.reason


async def test_cancel_arriving_with_its_call_does_not_kill_the_worker(
    probe: ModuleHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = 1.0
    monkeypatch.setattr(plexisandbox._worker, "_CANCEL_GRACE", grace)
    pid = probe.pid
    async with anyio.create_task_group() as tg:
        # Hold the worker's event loop (for less than the grace) so that the next CALL and its
        # CANCEL wait in the pipe and are read together.
        tg.start_soon(lambda: probe.call("hog", seconds=0.4, timeout=10))
        await anyio.sleep(0.1)
        with pytest.raises(CallTimeout):
            await probe.call("echo", value=1, timeout=0.1)
    await anyio.sleep(grace + 0.3)
    assert probe.stats().last_exit is None
    assert probe.pid == pid
    assert await probe.call("echo", value=2) == 2


async def test_sync_call_timeout_leaves_the_worker_serving(probe: ModuleHandle) -> None:
    # A thread cannot be interrupted: the call is abandoned, the worker keeps answering.
    with pytest.raises(CallTimeout):
        await probe.call("block", seconds=1.0, token="b1", timeout=0.2)
    assert await probe.call("echo", value="meanwhile") == "meanwhile"
    await until(lambda: _has(probe, "finished", "b1"))
    assert probe.stats().last_exit is None


async def test_abandoned_sync_calls_do_not_starve_later_sync_calls() -> None:
    # More sync calls stuck past their deadline than asyncio's default pool has threads
    # (cpu_count + 4): later sync calls must still run, not wait behind them for ever.
    stuck = min(32, (os.cpu_count() or 1) + 4) + 1
    restart = RestartPolicy(strategy=RestartStrategy.TEMPORARY)
    async with Supervisor(restart=restart, limits=Limits(threads=stuck + 16)) as sup:
        probe = await sup.load(PROBE)
        await probe.start()
        async with anyio.create_task_group() as tg:
            for i in range(stuck):

                async def one(i: int = i) -> None:
                    with pytest.raises(CallTimeout):
                        await probe.call("block", seconds=60, token=f"b{i}", timeout=0.3)

                tg.start_soon(one)
        assert await probe.call("echo_sync", value="runs", timeout=5) == "runs"
        assert probe.state is ModuleState.ACTIVE


async def test_calls_pending_when_the_deadline_hits_do_not_disturb_others(
    probe: ModuleHandle,
) -> None:
    results: dict[str, Any] = {}

    async def call(token: str, seconds: float, deadline: float) -> None:
        try:
            results[token] = await probe.call(
                "sleep", seconds=seconds, token=token, timeout=deadline
            )
        except CallTimeout as exc:
            results[token] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "slow", 30.0, 0.3)
        tg.start_soon(call, "quick", 0.05, 10.0)
        tg.start_soon(call, "medium", 0.5, 10.0)
    assert isinstance(results["slow"], CallTimeout)
    assert results["quick"] == "quick"
    assert results["medium"] == "medium"


async def test_cancel_of_a_call_on_a_dead_worker_raises_worker_crashed(
    probe: ModuleHandle,
) -> None:
    import os
    import signal

    pid = probe.pid
    assert pid is not None
    async with anyio.create_task_group() as tg:

        async def doomed() -> None:
            with pytest.raises(WorkerCrashed):
                await probe.call("sleep", seconds=30, token="d", timeout=60)

        tg.start_soon(doomed)
        await until(lambda: _has(probe, "started", "d"))
        os.kill(pid, signal.SIGKILL)
