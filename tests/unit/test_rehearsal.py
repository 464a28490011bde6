"""The spare's rehearsal of a worker's start-up leaves nothing a worker could observe."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator

import pytest
from plexisandbox_worker import rehearsal

from plexisandbox.interfaces import BaseModule


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_rehearsal_runs_every_step_and_leaves_no_trace(loop: asyncio.AbstractEventLoop) -> None:
    path, modules = list(sys.path), set(sys.modules)
    fds = set(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    assert rehearsal.rehearse(loop, lambda: False) == 3
    assert sys.path == path
    assert {m for m in set(sys.modules) - modules if "rehearsal" in m} == set()
    assert BaseModule._runtime is None
    assert set(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads  # confinement must start single-threaded
    assert asyncio.all_tasks(loop) == set()
    assert not loop.is_closed()
    assert not loop.is_running()


def test_rehearsal_stops_as_soon_as_a_request_waits(loop: asyncio.AbstractEventLoop) -> None:
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1  # the request arrives during the first step

    assert rehearsal.rehearse(loop, stop) == 1
    assert rehearsal.rehearse(loop, lambda: True) == 0
