"""Lifecycle through real workers: every legal transition, every illegal one (asyncio, trio)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from plexisandbox import ModuleHandle, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import IllegalTransition, ModuleError, ModuleUnavailable, SandboxError
from plexisandbox.interfaces import ModuleState as S
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"
NO_RESTART = RestartPolicy(strategy=RestartStrategy.TEMPORARY)


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor(restart=NO_RESTART) as supervisor:
        yield supervisor


def _states(handle: ModuleHandle) -> list[S]:
    return [state for _, state in handle.history]


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A reaped child's pid may linger only as a zombie if nobody waited; we reap, so any
    # process still there is a bug — unless the pid was already reused, which is not the
    # case within one test.
    return False


async def test_every_legal_transition_in_order(
    sup: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plexisandbox.module.probe")
    probe = await sup.load(PROBE)
    assert probe.state is S.LOADED
    assert _states(probe) == [S.UNLOADED, S.LOADING, S.LOADED]
    pid = probe.pid
    assert pid is not None

    await probe.start()
    assert probe.state is S.ACTIVE
    assert await probe.call("module_state") == "active"
    await probe.pause()
    assert probe.state is S.PAUSED
    await probe.resume()
    assert probe.state is S.ACTIVE
    await probe.stop()
    assert probe.state is S.LOADED
    await probe.start()  # LOADED again: start() is legal a second time
    await probe.pause()
    await probe.stop()  # stop() is legal from PAUSED too
    assert probe.state is S.LOADED
    await probe.start()
    assert await probe.call("hooks") == [
        "initialize",
        "start",
        "pause",
        "resume",
        "stop",
        "initialize",
        "start",
        "pause",
        "stop",
        "initialize",
        "start",
    ]
    assert probe.pid == pid, "lifecycle operations must not replace the worker"

    await probe.shutdown()
    assert probe.state is S.UNLOADED
    assert probe.pid is None
    assert _states(probe) == [
        S.UNLOADED,
        S.LOADING,
        S.LOADED,
        S.INITIALIZING,
        S.ACTIVE,
        S.PAUSED,
        S.ACTIVE,
        S.LOADED,
        S.INITIALIZING,
        S.ACTIVE,
        S.PAUSED,
        S.LOADED,
        S.INITIALIZING,
        S.ACTIVE,
        S.UNLOADING,
        S.UNLOADED,
    ]
    assert _pid_gone(pid)
    # The module's own shutdown() ran before the worker ended.
    assert any(
        r.getMessage().startswith("shutdown hook ran") and r.name == "plexisandbox.module.probe"
        for r in caplog.records
    )
    await probe.shutdown()  # idempotent
    assert probe.state is S.UNLOADED


async def test_shutdown_is_legal_from_loaded_and_paused(sup: Supervisor) -> None:
    loaded = await sup.load(PROBE, name="loaded")
    paused = await sup.load(PROBE, name="paused")
    await paused.start()
    await paused.pause()
    await loaded.shutdown()
    await paused.shutdown()
    assert loaded.state is S.UNLOADED
    assert paused.state is S.UNLOADED
    assert _states(loaded)[-2:] == [S.UNLOADING, S.UNLOADED]
    assert _states(paused)[-3:] == [S.PAUSED, S.UNLOADING, S.UNLOADED]


async def test_health_check_reports_the_modules_own_state(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    loaded = await probe.health_check()
    await probe.start()
    active = await probe.health_check()
    await probe.pause()
    paused = await probe.health_check()
    for report in (loaded, active, paused):
        assert report["status"] == "healthy"
        assert report["name"] == "probe"
        assert report["version"] == "1.2.3"
        assert isinstance(report["metrics"], dict)
    assert loaded["state"] == "loaded"
    assert active["state"] == "active"
    assert paused["state"] == "paused"


# (operation, states it is illegal from) — each state reached once per test.
ILLEGAL: dict[S, tuple[str, ...]] = {
    S.LOADED: ("pause", "resume", "stop"),
    S.ACTIVE: ("start", "resume"),
    S.PAUSED: ("start", "pause"),
    S.UNLOADED: ("start", "stop", "pause", "resume", "health_check"),
}


async def _bring_to(sup: Supervisor, state: S) -> ModuleHandle:
    probe = await sup.load(PROBE)
    if state in (S.ACTIVE, S.PAUSED):
        await probe.start()
    if state is S.PAUSED:
        await probe.pause()
    if state is S.UNLOADED:
        await probe.shutdown()
    assert probe.state is state
    return probe


@pytest.mark.parametrize("state", list(ILLEGAL), ids=lambda s: s.name)
async def test_illegal_transitions_raise_and_change_nothing(sup: Supervisor, state: S) -> None:
    probe = await _bring_to(sup, state)
    history = list(probe.history)
    for operation in ILLEGAL[state]:
        with pytest.raises(IllegalTransition) as info:
            await getattr(probe, operation)()
        err = info.value
        assert err.operation == operation
        assert err.state == state.name
        assert err.module == "probe"
        # The message names the state and where the operation is allowed from.
        assert state.name in str(err)
        assert "allowed from" in str(err)
        assert probe.state is state
    assert probe.history == history
    if state is not S.UNLOADED:
        assert (await probe.health_check())["status"] == "healthy"
    if state is S.ACTIVE:
        assert await probe.call("hooks") == ["initialize", "start"]


@pytest.mark.parametrize(
    ("state", "hint"),
    [(S.LOADED, "start() it first"), (S.PAUSED, "resume() it first"), (S.UNLOADED, "")],
    ids=lambda v: v.name if isinstance(v, S) else None,
)
async def test_calls_outside_active_raise_module_unavailable(
    sup: Supervisor, state: S, hint: str
) -> None:
    probe = await _bring_to(sup, state)
    with pytest.raises(ModuleUnavailable, match="takes calls only when ACTIVE") as info:
        await probe.call("echo", value=1)
    assert info.value.state == state.value
    assert hint in str(info.value)
    if state is S.PAUSED:
        await probe.resume()
        assert await probe.call("echo", value=1) == 1


@pytest.mark.parametrize("hook", ["initialize", "start"])
async def test_start_hook_returning_false_fails_the_module(sup: Supervisor, hook: str) -> None:
    probe = await sup.load(PROBE, config={"fail": hook})
    with pytest.raises(ModuleError) as info:
        await probe.start()
    assert info.value.remote_type == "LifecycleFailed"
    assert f"{hook}() returned False" in str(info.value)
    assert probe.state is S.FAILED
    assert _states(probe)[-2:] == [S.INITIALIZING, S.FAILED]
    # FAILED is not a dead end: the module can still be shut down cleanly.
    await probe.shutdown()
    assert probe.state is S.UNLOADED


async def test_start_hook_raising_fails_the_module_with_the_remote_error(sup: Supervisor) -> None:
    probe = await sup.load(PROBE, config={"raise": "initialize"})
    with pytest.raises(ModuleError) as info:
        await probe.start()
    assert info.value.remote_type == "ProbeFailure"
    assert info.value.remote_message == "initialize refused"
    assert "_explode" in info.value.remote_traceback
    assert probe.state is S.FAILED


@pytest.mark.parametrize("hook", ["pause", "stop"])
async def test_refusing_pause_or_stop_keeps_the_module_active(sup: Supervisor, hook: str) -> None:
    probe = await sup.load(PROBE, config={"fail": hook})
    await probe.start()
    with pytest.raises(ModuleError, match=f"{hook}\\(\\) returned False"):
        await getattr(probe, hook)()
    assert probe.state is S.ACTIVE
    assert await probe.call("echo", value="still here") == "still here"


async def test_unload_forgets_the_module_and_ends_its_worker(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    await probe.start()
    pid = probe.pid
    assert pid is not None
    assert set(sup.modules) == {"probe"}
    await sup.unload("probe")
    assert "probe" not in sup.modules
    assert probe.state is S.UNLOADED
    assert _pid_gone(pid)
    with pytest.raises(KeyError, match="no module named 'probe'"):
        await sup.unload("probe")
    # The name is free again.
    again = await sup.load(PROBE)
    assert again.state is S.LOADED


async def test_names_are_unique_per_supervisor(sup: Supervisor) -> None:
    await sup.load(PROBE)
    with pytest.raises(ValueError, match="already loaded; pass name="):
        await sup.load(PROBE)
    other = await sup.load(PROBE, name="probe-2")
    assert set(sup.modules) == {"probe", "probe-2"}
    assert other.pid != sup.modules["probe"].pid
    with pytest.raises(ValueError, match="is not allowed"):
        await sup.load(PROBE, name="../escape")


async def test_leaving_the_supervisor_shuts_every_module_down() -> None:
    async with Supervisor(restart=NO_RESTART) as sup:
        handles = [await sup.load(PROBE, name=f"p{i}") for i in range(3)]
        await handles[0].start()
        await handles[1].start()
        await handles[1].pause()
        pids = [h.pid for h in handles]
    assert all(h.state is S.UNLOADED for h in handles)
    assert all(pid is not None and _pid_gone(pid) for pid in pids)


async def test_stats_is_a_frozen_snapshot_with_the_pid(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    await probe.start()
    await probe.call("echo", value=1)
    with pytest.raises(ModuleError):
        await probe.call("fail")
    stats = probe.stats()
    assert stats.pid == probe.pid
    assert stats.name == "probe"
    assert stats.state is S.ACTIVE
    assert stats.calls == 2
    assert stats.errors == 1
    assert stats.in_flight == 0
    assert stats.latency_p50_ms is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.calls = 0  # type: ignore[misc]
    assert sup.stats()["probe"].pid == probe.pid


async def test_concurrent_loads_of_many_modules(sup: Supervisor) -> None:
    handles: dict[str, Any] = {}

    async def load(i: int) -> None:
        handles[f"c{i}"] = await sup.load(PROBE, name=f"c{i}")
        await handles[f"c{i}"].start()

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(load, i)
    assert len({h.pid for h in handles.values()}) == 6
    for name, handle in handles.items():
        assert await handle.call("echo", value=name) == name


async def test_cancelled_start_leaves_a_module_that_can_be_shut_down() -> None:
    async with Supervisor(restart=NO_RESTART) as sup:
        probe = await sup.load(PROBE, config={"initialize_delay": 30})
        with anyio.move_on_after(0.3):
            await probe.start()
        assert probe.state is not S.INITIALIZING
        await sup.unload("probe")
        assert probe.state is S.UNLOADED


async def test_unload_while_the_module_is_starting() -> None:
    async with Supervisor(restart=NO_RESTART) as sup:
        probe = await sup.load(PROBE, config={"initialize_delay": 30})
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                with pytest.raises(SandboxError):
                    await probe.start()

            tg.start_soon(start)
            with anyio.fail_after(10):
                while True:
                    if probe.state is S.INITIALIZING:
                        break
                    await anyio.sleep(0.01)
            with anyio.fail_after(10):
                await sup.unload("probe")
        assert probe.state is S.UNLOADED


async def test_cancelled_unload_still_ends_the_worker() -> None:
    async with Supervisor(restart=NO_RESTART) as sup:
        probe = await sup.load(PROBE, config={"shutdown_delay": 30})
        await probe.start()
        pid = probe.pid
        assert pid is not None
        with anyio.move_on_after(0.3):
            await sup.unload("probe")
        assert "probe" not in sup.modules
        with anyio.fail_after(4):  # SIGTERM, a 1 s grace, SIGKILL: well within this
            while True:
                if _pid_gone(pid):
                    break
                await anyio.sleep(0.05)
        assert probe.state is S.UNLOADED


async def test_a_shutdown_hook_that_outlasts_its_grace_is_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """unload() gives the module's shutdown() a grace, then stops the worker anyway; a hook
    cut off that way is logged, not passed over in silence."""
    from plexisandbox import _handle

    monkeypatch.setattr(_handle, "_SHUTDOWN_GRACE", 0.5)
    async with Supervisor(restart=NO_RESTART) as sup:
        probe = await sup.load(PROBE, config={"shutdown_delay": 30})
        await probe.start()
        with anyio.fail_after(10):
            await sup.unload("probe")
    assert probe.state is S.UNLOADED
    assert "shutdown() did not return within 0.5s" in caplog.text
