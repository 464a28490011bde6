"""Back-pressure on the host's queue towards a worker: large frames wait for the channel,
and a worker killed for not reading it takes nobody else down."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from plexisandbox import RestartPolicy, Supervisor
from plexisandbox._limits import RestartStrategy
from plexisandbox.errors import LimitExceeded
from plexisandbox.interfaces import ModuleState
from tests.conftest import TEST_MODULES, until

pytestmark = pytest.mark.anyio


async def test_concurrent_large_calls_wait_for_the_channel_instead_of_killing_the_worker() -> None:
    """Twelve 8 MiB calls at once (96 MiB, past the 64 MiB hard cap of the host's queue
    towards one worker): each waits behind the backlog before adding to it, so a worker that
    reads as fast as it can answers them all instead of being killed as unresponsive."""
    async with Supervisor() as sup:
        probe = await sup.load(TEST_MODULES / "probe.py")
        await probe.start()
        pid = probe.pid
        payload = b"x" * (8 << 20)
        sizes: list[int] = []

        async def one() -> None:
            sizes.append(len(await probe.call("echo", value=payload, timeout=60)))

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(one)
        assert sizes == [8 << 20] * 12
        assert probe.pid == pid
        assert probe.stats().last_exit is None


async def test_a_worker_killed_for_not_reading_its_channel_leaves_the_supervisor_running() -> None:
    """A module stops reading its input and has the host queue the 8 MiB answers of its
    calls to a neighbour: the host kills it at the hard cap. The queue's writer, woken by
    that death, must find the queue emptied, not fail (an IndexError there ended the
    supervisor's task group: every module died)."""
    async with Supervisor(restart=RestartPolicy(strategy=RestartStrategy.TEMPORARY)) as sup:
        neighbour = await sup.load(TEST_MODULES / "probe.py", name="neighbour")
        await neighbour.start()
        bad = await sup.load(TEST_MODULES / "stop_reading.py", validate=False)
        await bad.start()
        assert await bad.call("attack") == 12
        await until(lambda: bad.state is ModuleState.FAILED, timeout=30)
        last = bad.stats().last_exit
        assert last is not None
        assert last.cause == "unresponsive"
        assert "not reading its channel" in last.reason
        await anyio.sleep(0.5)
        assert await neighbour.call("echo", value="still here") == "still here"


async def test_a_flood_of_output_lines_is_read_slowly_and_dropped_in_bulk() -> None:
    """A module writes a pipe of newlines from a thread (65536 output lines per read) at next
    to no cost to itself: measured before, 96% of a host CPU for as long as it liked. Over
    the rate limit the lines are dropped in bulk and counted, and the host reads the pipe
    more slowly; the module keeps running, its neighbour keeps answering."""
    async with Supervisor() as sup:
        neighbour = await sup.load(TEST_MODULES / "probe.py", name="neighbour")
        await neighbour.start()
        flooder = await sup.load(TEST_MODULES / "flooder.py", validate=False)
        await flooder.start()
        await flooder.call("newlines")
        await anyio.sleep(0.5)  # past the budget's burst
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for _ in range(8):
            await anyio.sleep(0.5)
            with anyio.fail_after(2):  # the host's loop is never blocked for long
                assert await neighbour.call("echo", value=1) == 1
        share = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
        assert share < 0.3, f"the host spent {share:.0%} of a CPU on one module's newlines"
        assert flooder.stats().output_lines_dropped > 100_000
        assert flooder.state is ModuleState.ACTIVE


async def test_a_flood_of_costly_unsolicited_frames_stops_the_module_with_host_cpu() -> None:
    """A module re-sends a valid 16 MiB EMIT of tiny strings (~1 s of host CPU to decode
    each, for an event nobody listens to) from a thread: measured before, 100% of a host CPU
    for as long as it liked. The host takes one such frame within its burst; the next puts
    the module over its share and it is stopped with a LimitExceeded naming host_cpu."""
    async with Supervisor(restart=RestartPolicy(strategy=RestartStrategy.TEMPORARY)) as sup:
        neighbour = await sup.load(TEST_MODULES / "probe.py", name="neighbour")
        await neighbour.start()
        flooder = await sup.load(TEST_MODULES / "flooder.py", validate=False)
        await flooder.start()
        # The flood may overtake the call's own answer: then the call gets the limit.
        outcome: Any
        try:
            outcome = await flooder.call("frames")
        except LimitExceeded as exc:
            outcome = exc.limit
        assert outcome in (True, "host_cpu")
        await until(lambda: flooder.state is ModuleState.FAILED, timeout=30)
        last = flooder.stats().last_exit
        assert last is not None
        assert last.cause == "limit"
        assert last.limit == "host_cpu"
        assert "host CPU for its unsolicited messages" in last.reason
        assert await neighbour.call("echo", value="still here") == "still here"


async def test_a_flood_of_cheap_unsolicited_frames_is_read_more_slowly() -> None:
    """Small EMIT frames of tiny strings (~1 ms each to decode), written without pause: the
    host spends at most its budget on them, reading in short pauses; the module is not
    stopped (each pause is short, so its liveness answers still come), its neighbour keeps
    answering, and the supervisor shuts down cleanly in the middle of a pause."""
    async with Supervisor() as sup:
        neighbour = await sup.load(TEST_MODULES / "probe.py", name="neighbour")
        await neighbour.start()
        flooder = await sup.load(TEST_MODULES / "flooder.py", validate=False)
        await flooder.start()
        await flooder.call("frames", rows=20)
        await anyio.sleep(1.5)  # past the budget's burst
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for _ in range(8):
            await anyio.sleep(0.5)
            with anyio.fail_after(2):
                assert await neighbour.call("echo", value=1) == 1
        share = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
        assert share < 0.35, f"the host spent {share:.0%} of a CPU on one module's frames"
        assert flooder.state is ModuleState.ACTIVE
        conn = flooder._conn
        assert conn is not None
        assert conn._data_budget.pauses > 0
