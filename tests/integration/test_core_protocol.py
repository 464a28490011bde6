"""Hostile bytes on the channel: only the offending worker dies (asyncio and trio).

The garbage module finds its channel pipe the way an attacker would and writes frames that
break the protocol in one way each. The supervisor must kill that worker with a recorded
`ProtocolViolation`, fail its pending call with it, and keep serving every other module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from plexisandbox import Limits, ModuleHandle, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import ModuleError, ProtocolViolation
from plexisandbox.interfaces import ModuleState
from tests.conftest import TEST_MODULES, until
from tests.modules.garbage import GARBAGE

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"
GARBAGE_MODULE = TEST_MODULES / "garbage.py"
MAX_FRAME = 64 * 1024  # the garbage module's frame limit; "oversized_frame" exceeds it


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Module-scoped: one supervisor per backend lives through every attack in this file."""
    return str(request.param)


@pytest.fixture(scope="module")
async def sup(anyio_backend: str) -> AsyncIterator[Supervisor]:
    async with Supervisor(restart=RestartPolicy(strategy=RestartStrategy.TEMPORARY)) as s:
        yield s


@pytest.fixture(scope="module")
async def neighbour(sup: Supervisor) -> AsyncIterator[ModuleHandle]:
    """The same neighbour watches every hostile worker of the file come and go."""
    handle = await sup.load(PROBE, name="neighbour")
    await handle.start()
    pid = handle.pid
    yield handle
    assert handle.pid == pid
    assert handle.stats().last_exit is None


@pytest.fixture(autouse=True)
async def _forget_the_dead(sup: Supervisor) -> AsyncIterator[None]:
    """Each test starts with only the neighbour loaded, and leaves it that way."""
    yield
    for name in set(sup.modules) - {"neighbour"}:
        await sup.unload(name)


async def _still_serving(
    sup: Supervisor, neighbour: ModuleHandle, *, load_fresh: bool = True
) -> None:
    """The neighbour answers, and the supervisor still loads and runs a new module."""
    assert await neighbour.call("echo", value="still here", timeout=10) == "still here"
    assert neighbour.stats().last_exit is None
    if not load_fresh:
        return
    fresh = await sup.load(PROBE, name="fresh")
    await fresh.start()
    assert await fresh.call("echo", value=[1, 2], timeout=10) == [1, 2]
    await sup.unload("fresh")


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_garbage_frame_kills_only_the_sender(
    sup: Supervisor, neighbour: ModuleHandle, kind: str
) -> None:
    bad = await sup.load(GARBAGE_MODULE, limits=Limits(max_message_bytes=MAX_FRAME))
    await bad.start()
    pid = bad.pid
    # A hang here (the call's own deadline is far away) means the host kept waiting for a
    # body or ignored the frame.
    with anyio.fail_after(10), pytest.raises(ProtocolViolation) as info:
        await bad.call("send", kind=kind, timeout=60)
    fragment = GARBAGE[kind][1]
    assert fragment in info.value.reason
    assert info.value.module == "garbage"
    assert "violated the wire protocol" in str(info.value)
    await until(lambda: bad.state is ModuleState.FAILED)
    last_exit = bad.stats().last_exit
    assert last_exit is not None
    assert last_exit.cause == "protocol"
    assert fragment in last_exit.reason
    assert bad.pid is None
    assert pid is not None
    # (Loading a fresh module after each kind adds nothing; the last tests of the file do.)
    await _still_serving(sup, neighbour, load_fresh=False)


async def test_oversized_header_is_refused_before_its_body(
    sup: Supervisor, neighbour: ModuleHandle
) -> None:
    bad = await sup.load(GARBAGE_MODULE, limits=Limits(max_message_bytes=MAX_FRAME))
    await bad.start()
    # The worker announces 2 GiB and sends nothing more: only a check on the header itself
    # can answer this call.
    with anyio.fail_after(10), pytest.raises(ProtocolViolation) as info:
        await bad.call("send", kind="oversized_header", timeout=60)
    assert f"frame of {2**31} bytes announced; the limit is {MAX_FRAME} bytes" in str(info.value)
    await _still_serving(sup, neighbour)


async def test_oversized_result_fails_the_call_naming_the_limit(
    sup: Supervisor, neighbour: ModuleHandle
) -> None:
    # The worker knows the module's frame limit (BOOT) and refuses to send past it: the call
    # fails, the worker is not killed for a protocol violation.
    probe = await sup.load(PROBE, limits=Limits(max_message_bytes=MAX_FRAME))
    await probe.start()
    pid = probe.pid
    assert await probe.call("echo", value=b"x" * (MAX_FRAME - 100)) == b"x" * (MAX_FRAME - 100)
    with anyio.fail_after(10), pytest.raises(ModuleError, match="limit of 65536 bytes"):
        await probe.call("echo", value=b"x" * (MAX_FRAME + 1))
    assert await probe.call("echo", value="unharmed") == "unharmed"
    assert probe.pid == pid
    await _still_serving(sup, neighbour)


async def test_garbage_during_import_fails_the_load(
    sup: Supervisor, neighbour: ModuleHandle
) -> None:
    with anyio.fail_after(20), pytest.raises(ProtocolViolation, match="undecodable"):
        await sup.load(TEST_MODULES / "garbage_at_import.py")
    assert set(sup.modules) == {"neighbour"}
    await _still_serving(sup, neighbour)


async def test_many_hostile_workers_at_once_leave_the_neighbour_untouched(
    sup: Supervisor, neighbour: ModuleHandle
) -> None:
    kinds = ["undecodable", "ext_type", "unknown_op", "too_deep", "oversized_header"]
    bad = []
    for i, kind in enumerate(kinds):
        handle = await sup.load(
            GARBAGE_MODULE, name=f"g{i}", limits=Limits(max_message_bytes=MAX_FRAME)
        )
        await handle.start()
        bad.append((handle, kind))

    async def attack(handle: ModuleHandle, kind: str) -> None:
        with pytest.raises(ProtocolViolation):
            await handle.call("send", kind=kind, timeout=60)

    async def keep_calling() -> None:
        for i in range(200):
            assert await neighbour.call("echo", value=i, timeout=10) == i

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_calling)
            for handle, kind in bad:
                tg.start_soon(attack, handle, kind)
    await until(lambda: all(h.state is ModuleState.FAILED for h, _ in bad))
    await _still_serving(sup, neighbour)
