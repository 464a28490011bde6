"""Supervision through real workers: watchdog limits, health, hangs, restarts, metrics."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import CallTimeout, LimitExceeded, ModuleUnavailable, WorkerCrashed
from plexisandbox.interfaces import ModuleState
from tests.conftest import EXAMPLES, TEST_MODULES
from tests.conftest import until as _until

pytestmark = pytest.mark.anyio
HOG = TEST_MODULES / "sup_hog.py"
CRASHLOOP = TEST_MODULES / "sup_crashloop.py"
ONCE = RestartPolicy(strategy=RestartStrategy.TEMPORARY)
FAST = 0.05  # watchdog interval for these tests, seconds


async def _hog(sup: Supervisor, limits: Limits, **kw: Any) -> Any:
    handle = await sup.load(HOG, limits=limits, restart=kw.pop("restart", ONCE), **kw)
    await handle.start()
    return handle


async def _neighbour(sup: Supervisor) -> Any:
    echo = await sup.load(EXAMPLES / "echo.py")
    await echo.start()
    return echo


# -- watchdog limits -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limits", "method", "kwargs", "limit"),
    [
        pytest.param(Limits(memory_mb=96), "bomb", {"step_mb": 8}, "memory_mb", id="memory"),
        pytest.param(Limits(threads=12), "threads", {"count": 200}, "threads", id="threads"),
        pytest.param(Limits(open_files=40), "fds", {"count": 2000}, "open_files", id="fds"),
        pytest.param(
            Limits(cpu_percent=25, cpu_window=1.0), "spin", {"seconds": 30}, "cpu_percent", id="cpu"
        ),
    ],
)
async def test_watchdog_kills_worker_over_limit_with_limit_exceeded(
    limits: Limits, method: str, kwargs: dict[str, Any], limit: str
) -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, limits)
        echo = await _neighbour(sup)
        pid = hog.pid
        with pytest.raises(LimitExceeded) as info:
            await hog.call(method, timeout=30, **kwargs)
        error = info.value
        assert error.module == "sup_hog"
        assert error.limit == limit
        assert error.threshold == getattr(limits, limit)
        assert error.observed >= error.threshold
        assert f"Limits({limit}=" in str(error)
        await _until(lambda: hog.state is ModuleState.FAILED)
        stats = hog.stats()
        assert stats.last_exit_cause == f"watchdog:{limit}"
        assert stats.last_exit is not None
        assert stats.last_exit.limit == limit
        assert stats.pid is None
        assert not _alive(pid)
        # The neighbour never noticed.
        assert await echo.call("echo", value="still here") == "still here"


async def test_cpu_seconds_limit_kills_via_rlimit_or_watchdog() -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits(cpu_seconds=1))
        with pytest.raises(LimitExceeded) as info:
            await hog.call("spin", seconds=30, timeout=30)
        assert info.value.limit == "cpu_seconds"
        await _until(lambda: hog.state is ModuleState.FAILED)
        assert hog.stats().last_exit_cause in ("cpu_rlimit", "watchdog:cpu_seconds")


async def test_stats_carry_watchdog_readings() -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits())
        await _until(lambda: hog.stats().rss_bytes is not None)
        await hog.call("busy_loop", seconds=0.3)
        await anyio.sleep(FAST * 3)
        stats = hog.stats()
        assert stats.pid == await hog.call("pid")
        assert stats.rss_bytes is not None
        assert 5 << 20 < stats.rss_bytes < 256 << 20
        assert stats.uss_bytes is not None
        assert stats.uss_bytes <= stats.rss_bytes
        assert stats.threads is not None
        assert stats.threads >= 2
        assert stats.open_fds is not None
        assert stats.open_fds >= 3
        assert stats.cpu_seconds is not None
        assert stats.cpu_seconds >= 0.2
        assert stats.cpu_percent is not None
        assert sup.watchdog.rounds > 0


# -- hangs, liveness, progress ---------------------------------------------------------------
async def test_hung_call_times_out_with_stacks_showing_the_hanging_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits())
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, "plexisandbox"), pytest.raises(CallTimeout) as info:
            await hog.call("hang", seconds=30, timeout=0.5)
        assert time.monotonic() - started < 3
        stacks = info.value.stacks
        assert stacks is not None
        assert "sup_hog.py" in stacks
        assert "HANG-HERE" in stacks
        assert "HANG-HERE" in str(info.value)
        assert any("HANG-HERE" in r.getMessage() for r in caplog.records)
        assert hog.stats().timeouts == 1
        # The hung thread was abandoned, the worker answers.
        assert await hog.call("echo", value=1) == 1


async def test_call_blocking_the_loop_times_out_then_worker_is_killed_as_unresponsive() -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits())
        with pytest.raises(CallTimeout) as info:
            await hog.call("hang_loop", seconds=30, timeout=0.5)
        assert "LOOP-HANG-HERE" in (info.value.stacks or "")
        # It cannot honour the cancel frame: killed after the grace period, stacks kept.
        await _until(lambda: hog.state is ModuleState.FAILED, timeout=10)
        last = hog.stats().last_exit
        assert last is not None
        assert last.label == "unresponsive"
        assert "LOOP-HANG-HERE" in (last.stacks or "")


async def test_stalled_event_loop_is_killed_with_stacks_attached_to_the_error() -> None:
    limits = Limits(ping_interval=0.1, ping_timeout=0.2, stall_timeout=0.6)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, limits)
        echo = await _neighbour(sup)
        started = time.monotonic()
        with pytest.raises(WorkerCrashed) as info:
            await hog.call("hang_loop", seconds=30, timeout=20)
        assert time.monotonic() - started < 5
        assert info.value.cause == "unresponsive"
        assert "LOOP-HANG-HERE" in (info.value.stacks or "")
        await _until(lambda: hog.state is ModuleState.FAILED)
        assert hog.stats().last_exit_cause == "unresponsive"
        assert await echo.call("echo", value=2) == 2


async def test_worker_holding_the_gil_fails_liveness_and_is_killed() -> None:
    limits = Limits(ping_interval=0.1, ping_timeout=0.2, ping_failures=3)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, limits)
        started = time.monotonic()
        with pytest.raises(WorkerCrashed) as info:
            await hog.call("gil_hog", timeout=20)
        assert time.monotonic() - started < 5
        assert info.value.cause == "unresponsive"
        assert "control pings" in info.value.reason
        await _until(lambda: hog.state is ModuleState.FAILED)
        assert hog.stats().last_exit_cause == "unresponsive"


async def test_busy_worker_is_alive_and_not_killed() -> None:
    # The loop is busy for 2.5 s, far beyond ping_timeout × ping_failures, but the control
    # thread still answers: busy is not dead.
    limits = Limits(ping_interval=0.1, ping_timeout=0.3, ping_failures=3, stall_timeout=10)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, limits)
        assert await hog.call("busy_loop", seconds=2.5, timeout=10) > 0
        assert hog.state is ModuleState.ACTIVE
        assert hog.stats().last_exit is None


async def test_debug_mode_suspends_deadlines_and_health_checks() -> None:
    limits = Limits(ping_interval=0.1, ping_timeout=0.3, ping_failures=3, stall_timeout=0.3)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, limits)
        hog.debug = True
        assert hog.stats().debug is True
        # Blocks the loop for 1 s with a 0.2 s deadline: neither the deadline nor the
        # stall detector fires while debugging.
        assert await hog.call("hang_loop", seconds=1.0, timeout=0.2) is None
        assert hog.state is ModuleState.ACTIVE
        hog.debug = False
        with pytest.raises(CallTimeout):
            await hog.call("hang", seconds=5, timeout=0.2)


# -- restarts --------------------------------------------------------------------------------
async def test_crash_loop_restarts_with_backoff_then_stays_failed_until_restart() -> None:
    policy = RestartPolicy(
        strategy=RestartStrategy.PERMANENT,
        max_restarts=3,
        period=60,
        backoff_initial=0.1,
        backoff_factor=2.0,
        jitter=0.1,
    )
    async with Supervisor(watchdog_interval=FAST) as sup:
        mod = await sup.load(CRASHLOOP, restart=policy)
        await mod.start()
        await _until(lambda: mod.state is ModuleState.FAILED, timeout=15)
        stats = mod.stats()
        assert stats.restarts == 3
        assert stats.last_exit_cause == "module_error"
        assert stats.last_exit is not None
        assert stats.last_exit.exit_code == 7
        # Backoff: the pause between a crash (ERROR) and the next start (LOADING) doubles.
        pauses = [
            later[0] - earlier[0]
            for earlier, later in zip(mod.history, mod.history[1:], strict=False)
            if earlier[1] is ModuleState.ERROR and later[1] is ModuleState.LOADING
        ]
        assert len(pauses) == 3
        for pause, expected in zip(pauses, (0.1, 0.2, 0.4), strict=True):
            assert expected * 0.85 <= pause <= expected * 1.5 + 0.3, pauses
        # FAILED holds: no more restarts, calls refused with a typed error.
        await anyio.sleep(0.8)
        assert mod.state is ModuleState.FAILED
        assert mod.stats().restarts == 3
        with pytest.raises(ModuleUnavailable) as info:
            await mod.call("echo", value=1)
        assert info.value.state == "failed"
        # The operator acts; the module comes back as it was (ACTIVE), history kept.
        await mod.restart()
        assert mod.state is ModuleState.ACTIVE
        assert mod.history[0][1] is ModuleState.UNLOADED
        assert [s for _, s in mod.history].count(ModuleState.FAILED) == 1
        await mod.shutdown()
        assert mod.state is ModuleState.UNLOADED


async def test_transient_module_is_restarted_after_a_crash_and_answers_again() -> None:
    policy = RestartPolicy(backoff_initial=0.05, jitter=0.0)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits(), restart=policy)
        first = hog.pid
        with pytest.raises(WorkerCrashed) as info:
            await hog.call("crash", code=5)
        assert info.value.exit_code == 5
        await _until(lambda: hog.state is ModuleState.ACTIVE and hog.pid not in (None, first))
        assert await hog.call("echo", value="back") == "back"
        assert hog.stats().restarts == 1
        assert hog.stats().last_exit_cause == "module_error"
        states = [s for _, s in hog.history]
        assert states[-5:] == [
            ModuleState.ERROR,
            ModuleState.LOADING,
            ModuleState.LOADED,
            ModuleState.INITIALIZING,
            ModuleState.ACTIVE,
        ]


async def test_calls_while_restarting_get_module_unavailable() -> None:
    policy = RestartPolicy(backoff_initial=0.5, jitter=0.0)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits(), restart=policy)
        with pytest.raises(WorkerCrashed):
            await hog.call("crash")
        await _until(lambda: hog.state is ModuleState.ERROR)
        with pytest.raises(ModuleUnavailable) as info:
            await hog.call("echo", value=1)
        assert info.value.state == "error"
        await _until(lambda: hog.state is ModuleState.ACTIVE)


async def test_operator_action_during_backoff_wins_over_the_automatic_restart() -> None:
    policy = RestartPolicy(backoff_initial=0.6, jitter=0.0)
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits(), restart=policy)
        with pytest.raises(WorkerCrashed):
            await hog.call("crash")
        await _until(lambda: hog.state is ModuleState.ERROR)
        await hog.restart()  # the operator is faster than the backoff
        pid = hog.pid
        await anyio.sleep(1.0)  # the backoff has expired meanwhile
        assert hog.state is ModuleState.ACTIVE
        assert hog.pid == pid
        assert hog.stats().restarts == 1

        with pytest.raises(WorkerCrashed):
            await hog.call("crash")
        await _until(lambda: hog.state is ModuleState.ERROR)
        await hog.shutdown()
        await anyio.sleep(1.0)
        assert hog.state is ModuleState.UNLOADED
        assert hog.pid is None


# -- shutdown ladder -------------------------------------------------------------------------
async def test_shutdown_ladder_escalates_to_sigkill_for_a_worker_ignoring_sigterm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits())
        assert await hog.call("ignore_sigterm") is True
        pid = hog.pid
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, "plexisandbox"):
            await hog.shutdown()
        assert 0.8 < time.monotonic() - started < 5
        assert hog.state is ModuleState.UNLOADED
        assert not _alive(pid)
        assert any("ignored SIGTERM" in r.getMessage() for r in caplog.records)


async def test_shutdown_of_a_well_behaved_worker_ends_at_sigterm_and_is_clean(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits())
        conn = hog._conn
        with caplog.at_level(logging.WARNING, "plexisandbox"):
            await hog.shutdown()
        assert not any("SIGKILL" in r.getMessage() for r in caplog.records)
        assert conn is not None
        assert conn.exit_info is not None
        assert conn.exit_info.label == "clean"


# -- metrics ---------------------------------------------------------------------------------
_SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? -?[0-9.e+-]+$')


async def test_metrics_text_is_prometheus_exposition_with_every_module() -> None:
    async with Supervisor(watchdog_interval=FAST) as sup:
        hog = await _hog(sup, Limits(memory_mb=96))
        echo = await _neighbour(sup)
        for i in range(3):
            await echo.call("echo", value=i)
        with pytest.raises(LimitExceeded):
            await hog.call("bomb", timeout=30)
        await _until(lambda: hog.state is ModuleState.FAILED)
        await _until(lambda: echo.stats().rss_bytes is not None)
        text = sup.metrics_text()
    lines = text.splitlines()
    for line in lines:
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or _SAMPLE.match(line), line
    assert 'plexisandbox_module_calls_total{module="echo"} 3' in lines
    assert 'plexisandbox_module_call_timeouts_total{module="echo"} 0' in lines
    assert 'plexisandbox_module_state{module="sup_hog",state="failed"} 1' in lines
    assert 'plexisandbox_module_state{module="echo",state="active"} 1' in lines
    assert (
        'plexisandbox_module_last_exit_info{module="sup_hog",cause="watchdog:memory_mb"} 1' in lines
    )
    assert any(
        line.startswith('plexisandbox_module_resident_memory_bytes{module="echo"} ')
        for line in lines
    )
    assert any('quantile="0.99"' in line for line in lines)
    assert "plexisandbox_watchdog_limit_kills_total 1" in lines


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
