"""Back-pressure on the host's queue towards a worker: large frames wait for the channel,
and a worker killed for not reading it takes nobody else down."""

from __future__ import annotations

import anyio
import pytest

from plexisandbox import RestartPolicy, Supervisor
from plexisandbox._limits import RestartStrategy
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
