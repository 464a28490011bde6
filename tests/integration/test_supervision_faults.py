"""Nothing is lost under faults: a worker killed mid-load, a supervisor killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, RestartPolicy, Supervisor
from plexisandbox.errors import ModuleUnavailable, WorkerCrashed
from plexisandbox.interfaces import ModuleState
from tests.conftest import EXAMPLES, ROOT, TEST_MODULES

HOG = TEST_MODULES / "sup_hog.py"


@pytest.mark.anyio
async def test_sigkill_during_500_concurrent_calls_ends_every_call_and_spares_neighbours() -> None:
    policy = RestartPolicy(backoff_initial=0.05, jitter=0.0)
    async with Supervisor(watchdog_interval=0.1) as sup:
        victim = await sup.load(HOG, restart=policy)
        await victim.start()
        neighbour = await sup.load(EXAMPLES / "echo.py")
        await neighbour.start()
        outcomes: dict[str, int] = {}
        wrong: list[Any] = []
        neighbour_answers: list[int] = []

        async def one(i: int) -> None:
            try:
                value = await victim.call("slow_echo", value=i, delay=0.2, timeout=30)
            except (WorkerCrashed, ModuleUnavailable) as exc:
                key = type(exc).__name__
            else:
                key = "answered"
                if value != i:
                    wrong.append((i, value))
            outcomes[key] = outcomes.get(key, 0) + 1

        async def neighbour_traffic() -> None:
            for i in range(200):
                neighbour_answers.append(await neighbour.call("echo", value=i, timeout=5))

        pid = victim.pid
        assert pid is not None
        with anyio.fail_after(20):  # "every call ends": a hang fails here, not at pytest's limit
            async with anyio.create_task_group() as tg:
                tg.start_soon(neighbour_traffic)
                for i in range(500):
                    tg.start_soon(one, i)
                await anyio.sleep(0.1)  # 256 in flight in the worker, the rest queued
                os.kill(pid, signal.SIGKILL)
        assert sum(outcomes.values()) == 500, outcomes
        assert outcomes.get("WorkerCrashed", 0) > 0, outcomes
        assert not wrong
        assert neighbour_answers == list(range(200))
        last = victim.stats().last_exit
        assert last is not None
        assert last.label == "signal:SIGKILL"
        # The victim comes back by itself (transient, abnormal exit) and answers again.
        with anyio.fail_after(10):
            while victim.state is not ModuleState.ACTIVE:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        assert await victim.call("echo", value="back") == "back"
        assert victim.stats().restarts == 1


_SUPERVISOR_SCRIPT = """
import json, sys, anyio
from plexisandbox import Supervisor
async def main():
    async with Supervisor() as sup:
        pids = []
        for i in range(3):
            h = await sup.load(sys.argv[1], name=f"m{i}")
            await h.start()
            pids.append(h.pid)
        print(json.dumps(pids), flush=True)
        await anyio.sleep(60)
anyio.run(main, backend=sys.argv[2])
"""


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it: either way it no longer runs."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_supervisor_killed_by_sigkill_leaves_no_worker_running(backend: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR_SCRIPT, str(EXAMPLES / "echo.py"), backend],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        pids = json.loads(line)
        assert len(pids) == 3
        assert not any(_dead(pid) for pid in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(_dead(pid) for pid in pids):
            time.sleep(0.02)
        survivors = [pid for pid in pids if not _dead(pid)]
        assert not survivors, f"workers outlived their supervisor: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.anyio
async def test_supervisor_exit_reaps_every_worker_and_leaves_no_zombie() -> None:
    async with Supervisor() as sup:
        handles = []
        for i in range(3):
            handle = await sup.load(HOG, name=f"h{i}", limits=Limits())
            await handle.start()
            handles.append(handle)
        await handles[0].call("ignore_sigterm")  # the ladder must still end it
        pids = [h.pid for h in handles]
    children = _children_of(os.getpid())
    assert not set(pids) & children, f"left behind (zombie or running): {set(pids) & children}"
    assert all(_dead(pid) for pid in pids if pid is not None)


def _children_of(parent: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.add(int(name))
    return found
