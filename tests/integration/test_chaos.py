"""Chaos: random workers are SIGKILLed or memory-bombed under load; every call is accounted for.

Bounded: ~12 s of load. Asserts calls sent = calls answered (with the right value) + calls
failed with a typed error, that no call hangs, and that every module is ACTIVE afterwards.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import CallTimeout, LimitExceeded, ModuleUnavailable, WorkerCrashed
from plexisandbox.interfaces import ModuleState
from tests.conftest import TEST_MODULES

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
HOG = TEST_MODULES / "sup_hog.py"
MODULES = 4
CLIENTS = 40
LOAD_SECONDS = 12.0
TYPED = (WorkerCrashed, ModuleUnavailable, CallTimeout, LimitExceeded)


async def test_random_worker_kills_under_load_lose_no_call() -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "4")))
    policy = RestartPolicy(
        strategy=RestartStrategy.PERMANENT,
        max_restarts=1000,
        period=60,
        backoff_initial=0.02,
        backoff_max=0.2,
        jitter=0.2,
    )
    sent = 0
    answered = 0
    failed: Counter[str] = Counter()
    wrong: list[tuple[int, object]] = []
    kills = 0
    bombs = 0
    async with Supervisor(watchdog_interval=0.1) as sup:
        handles = []
        for i in range(MODULES):
            handle = await sup.load(
                HOG, name=f"chaos{i}", restart=policy, limits=Limits(memory_mb=128)
            )
            await handle.start()
            handles.append(handle)
        stop_at = time.monotonic() + LOAD_SECONDS

        async def client(seed: int) -> None:
            nonlocal sent, answered
            local = random.Random(seed)
            while time.monotonic() < stop_at:
                handle = local.choice(handles)
                value = local.randrange(1 << 30)
                sent += 1
                try:
                    result = await handle.call(
                        "slow_echo", value=value, delay=local.random() * 0.02, timeout=5
                    )
                except TYPED as exc:
                    failed[type(exc).__name__] += 1
                    if isinstance(exc, ModuleUnavailable):
                        await anyio.sleep(0.01)  # restarting: do not spin
                else:
                    if result == value:
                        answered += 1
                    else:
                        wrong.append((value, result))

        async def bomb(handle: Any) -> None:
            # A memory bomb: the watchdog kills that worker; its in-flight calls fail with
            # LimitExceeded, counted like any other call.
            nonlocal sent, bombs
            sent += 1
            try:
                await handle.call("bomb", step_mb=16, timeout=10)
            except TYPED as exc:
                failed[type(exc).__name__] += 1
                bombs += isinstance(exc, LimitExceeded)
            else:
                wrong.append(("bomb", "answered"))

        async def killer(tg: Any) -> None:
            nonlocal kills
            while time.monotonic() < stop_at - 1.0:
                await anyio.sleep(rng.uniform(0.1, 0.4))
                handle = rng.choice(handles)
                if rng.random() < 0.2:
                    tg.start_soon(bomb, handle)
                    continue
                pid = handle.pid
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass

        with anyio.fail_after(LOAD_SECONDS + 20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(killer, tg)
                for _ in range(CLIENTS):
                    tg.start_soon(client, rng.randrange(1 << 30))
            # Everyone recovers once the chaos stops.
            while any(h.state is not ModuleState.ACTIVE for h in handles):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        for handle in handles:
            assert await handle.call("echo", value="ok") == "ok"
        restarts = sum(h.stats().restarts for h in handles)
    print(
        f"\nchaos: sent={sent} answered={answered} failed={dict(failed)} kills={kills} "
        f"restarts={restarts} bombs={bombs}"
    )
    assert not wrong, wrong[:5]
    assert sent == answered + sum(failed.values())
    assert kills >= 10
    assert answered > sent // 2
    assert failed["WorkerCrashed"] > 0
    assert bombs > 0
    assert failed["LimitExceeded"] >= bombs
    assert failed["CallTimeout"] == 0  # a kill is reported as a crash, never as a hang
