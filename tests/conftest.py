"""Shared fixtures: every async test runs under asyncio and trio (anyio's pytest plugin)."""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "modules"
TEST_MODULES = ROOT / "tests" / "modules"
MUST_CONFINE = os.environ.get("PLEXISANDBOX_MUST_CONFINE") == "1"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def skip_or_fail(reason: str) -> None:
    """Skip when this kernel lacks a feature; fail instead under PLEXISANDBOX_MUST_CONFINE=1."""
    if MUST_CONFINE:
        pytest.fail(f"PLEXISANDBOX_MUST_CONFINE=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def inheritable_host_fds(folder: Path) -> Iterator[None]:
    """Open inheritable descriptors in the host (a file and a pipe's read end) for the
    duration: the kind a careless fork/exec would leak into a worker."""
    leaked = os.open(folder / "host-file", os.O_CREAT | os.O_RDWR)
    os.set_inheritable(leaked, True)
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_r, True)
    try:
        yield
    finally:
        for fd in (leaked, leaked_r, leaked_w):
            os.close(fd)


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll `predicate` (sync or async) until it is true; fail after `timeout` seconds.

    For state across the process boundary (a module's answers, a handle's state), which has
    no event to wait on.
    """
    with anyio.fail_after(timeout):
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.01)
