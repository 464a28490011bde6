"""A worker that dies mid-call: every call ends at once with a typed error (asyncio, trio)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, ModuleHandle, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import ModuleUnavailable, SandboxError, WorkerCrashed
from plexisandbox.interfaces import ModuleState
from tests.conftest import TEST_MODULES, until

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"
NO_RESTART = RestartPolicy(strategy=RestartStrategy.TEMPORARY)


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor(restart=NO_RESTART) as supervisor:
        yield supervisor


async def _started(probe: ModuleHandle, n: int) -> bool:
    return len((await probe.call("tokens"))["started"]) >= n


async def _fire(probe: ModuleHandle, n: int, outcomes: list[BaseException | Any]) -> None:
    async def one(i: int) -> None:
        try:
            outcomes.append(await probe.call("sleep", seconds=60, token=f"k{i}", timeout=120))
        except SandboxError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)


async def test_worker_killed_mid_call_fails_every_in_flight_call(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    neighbour = await sup.load(PROBE, name="neighbour")
    await probe.start()
    await neighbour.start()
    pid = probe.pid
    assert pid is not None
    outcomes: list[Any] = []
    # The deadlines are two minutes away: only the worker's death can end these calls, and
    # fail_after turns a hang into a failure instead of a stalled suite.
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_fire, probe, 50, outcomes)
            await until(lambda: _started(probe, 50))
            os.kill(pid, signal.SIGKILL)
    assert len(outcomes) == 50
    for err in outcomes:
        assert isinstance(err, WorkerCrashed), err
        assert err.signal == signal.SIGKILL
        assert err.exit_code is None
        assert err.module == "probe"
        assert "killed by SIGKILL" in str(err)
    await until(lambda: probe.state is ModuleState.FAILED)
    last_exit = probe.stats().last_exit
    assert last_exit is not None
    assert last_exit.signal == signal.SIGKILL
    assert probe.stats().in_flight == 0
    with pytest.raises(ModuleUnavailable):
        await probe.call("echo", value=1)
    # Its neighbour never noticed.
    assert await neighbour.call("echo", value="fine") == "fine"


async def test_calls_waiting_for_a_slot_also_end_when_the_worker_dies(sup: Supervisor) -> None:
    probe = await sup.load(PROBE, limits=Limits(max_in_flight=2))
    await probe.start()
    pid = probe.pid
    assert pid is not None
    outcomes: list[Any] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_fire, probe, 6, outcomes)  # two in flight, four waiting for a slot
            # (Not `tokens`: with both slots taken, that call would wait for a slot too.)
            await until(lambda: probe.stats().in_flight == 2)
            await anyio.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
    assert len(outcomes) == 6
    assert all(isinstance(err, WorkerCrashed) for err in outcomes), outcomes


async def test_module_exiting_mid_call_reports_exit_code_and_last_output(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    await probe.start()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            outcomes: list[Any] = []
            tg.start_soon(_fire, probe, 5, outcomes)
            await until(lambda: _started(probe, 5))
            with pytest.raises(WorkerCrashed) as info:
                await probe.call("exit", code=7, last_words="my last words")
    err = info.value
    assert err.exit_code == 7
    assert err.signal is None
    assert any("my last words" in line for line in err.stderr_tail)
    assert "exited with code 7" in str(err)
    assert "my last words" in str(err)
    assert len(outcomes) == 5
    assert all(isinstance(o, WorkerCrashed) and o.exit_code == 7 for o in outcomes)
    await until(lambda: probe.state is ModuleState.FAILED)
    assert probe.stats().last_exit is not None


async def test_worker_dying_inside_a_lifecycle_hook_fails_the_start(sup: Supervisor) -> None:
    probe = await sup.load(PROBE, config={"exit": "initialize"})
    with anyio.fail_after(20), pytest.raises(WorkerCrashed) as info:
        await probe.start()
    assert info.value.exit_code == 3
    await until(lambda: probe.state is ModuleState.FAILED)
    await probe.shutdown()
    assert probe.state is ModuleState.UNLOADED


async def test_worker_killed_while_idle_is_noticed(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    await probe.start()
    pid = probe.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    await until(lambda: probe.state is ModuleState.FAILED)
    last_exit = probe.stats().last_exit
    assert last_exit is not None
    assert last_exit.signal == signal.SIGTERM
    assert probe.pid is None


async def test_crashing_module_restarts_then_fails_after_max_restarts() -> None:
    policy = RestartPolicy(
        strategy=RestartStrategy.TRANSIENT, max_restarts=2, period=60, backoff_initial=0.01
    )
    async with Supervisor(restart=policy) as sup:
        probe = await sup.load(PROBE)
        await probe.start()
        pids = [probe.pid]
        for restart in (1, 2):
            with pytest.raises(WorkerCrashed):
                await probe.call("exit", code=5)
            await until(
                lambda: probe.state is ModuleState.ACTIVE and probe.pid not in (*pids, None)
            )
            pids.append(probe.pid)
            assert probe.stats().restarts == restart
            # A fresh worker: the module was initialized and started again from scratch.
            assert await probe.call("hooks") == ["initialize", "start"]
        with pytest.raises(WorkerCrashed):
            await probe.call("exit", code=5)
        await until(lambda: probe.state is ModuleState.FAILED)
        assert probe.stats().restarts == 2
        assert probe.pid is None
        assert ModuleState.ERROR in [state for _, state in probe.history]


async def test_worker_closing_its_channel_is_killed_and_its_calls_end(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plexisandbox._worker

    monkeypatch.setattr(plexisandbox._worker, "_EOF_GRACE", 0.3)
    probe = await sup.load(PROBE)
    await probe.start()
    with anyio.fail_after(10), pytest.raises(WorkerCrashed) as info:
        await probe.call("close_channel", timeout=60)
    assert "closed its channel" in str(info.value)
    await until(lambda: probe.state is ModuleState.FAILED)
