"""Calls through real workers: every msgpack type, errors, pipelining (asyncio and trio)."""

from __future__ import annotations

import datetime
import math
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, ModuleHandle, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import CallTimeout, ModuleError
from tests.conftest import EXAMPLES, TEST_MODULES, until

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"
UTC = datetime.UTC


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Module-scoped, so that one probe worker per backend serves this file's call tests."""
    return str(request.param)


@pytest.fixture(scope="module")
async def probe(anyio_backend: str) -> AsyncIterator[ModuleHandle]:
    """One worker shared by the tests that leave it healthy (every test checks that it is)."""
    async with Supervisor(restart=RestartPolicy(strategy=RestartStrategy.TEMPORARY)) as sup:
        handle = await sup.load(PROBE)
        await handle.start()
        pid = handle.pid
        yield handle
        assert handle.pid == pid, "a test cost the shared worker its life"


def _nested(depth: int) -> Any:
    value: Any = {"leaf": [1, "two", b"3"]}
    for i in range(depth):
        value = {"level": i, "children": [value, None]}
    return value


# Values that must come back equal *and* of the same type, in both directions.
ROUND_TRIP: list[tuple[str, Any]] = [
    ("nil", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("positive_fixint_max", 127),
    ("negative_fixint_min", -32),
    ("uint8_max", 255),
    ("int16_min", -(2**15)),
    ("uint32_max", 2**32 - 1),
    ("int32_min", -(2**31)),
    ("int64_max", 2**63 - 1),
    ("int64_min", -(2**63)),
    ("uint64_max", 2**64 - 1),
    ("float", 1.5),
    ("float_negative", -2.25e-300),
    ("float_subnormal", 5e-324),
    ("float_max", sys.float_info.max),
    ("inf", math.inf),
    ("minus_inf", -math.inf),
    ("str_empty", ""),
    ("str_unicode", "héllo ✓ 🎲 ünïcödé"),
    ("str_nul", "a\x00b"),
    ("str_large", "x" * 300_000),
    ("bytes_empty", b""),
    ("bytes_all", bytes(range(256))),
    ("bytes_large", b"\xff" * 300_000),
    ("list_empty", []),
    ("list_mixed", [1, "a", None, True, 1.5, b"x", [], {}]),
    ("dict_empty", {}),
    ("dict", {"a": 1, "b": [1, 2], "c": {"d": None}}),
    ("dict_int_keys", {1: "one", -2: "minus two"}),
    ("nested", _nested(20)),
    ("list_long", list(range(10_000))),
    ("datetime", datetime.datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC)),
    ("datetime_pre_epoch", datetime.datetime(1900, 1, 1, tzinfo=UTC)),
    ("datetime_far_future", datetime.datetime(2500, 12, 31, 23, 59, 59, tzinfo=UTC)),
]


def _same(a: Any, b: Any) -> bool:
    """Equal and of identical types all the way down (True is not 1, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a == 0.0:
        return math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


async def test_each_msgpack_type_round_trips_through_async_and_sync_methods(
    probe: ModuleHandle,
) -> None:
    for label, value in ROUND_TRIP:
        for method in ("echo", "echo_sync"):
            got = await probe.call(method, value=value, timeout=10)
            assert _same(got, value), f"{label} via {method}: sent {value!r:.80}, got {got!r:.80}"


async def test_special_floats_keep_their_identity(probe: ModuleHandle) -> None:
    assert math.isnan(await probe.call("echo", value=math.nan))
    negative_zero = await probe.call("echo", value=-0.0)
    assert negative_zero == 0.0
    assert math.copysign(1, negative_zero) == -1


async def test_datetime_keeps_its_instant_and_arrives_in_utc(probe: ModuleHandle) -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    sent = datetime.datetime(2024, 6, 1, 14, 0, 0, 500, tzinfo=plus_two)
    got = await probe.call("echo", value=sent)
    assert isinstance(got, datetime.datetime)
    assert got == sent
    assert got.utcoffset() == datetime.timedelta(0)
    made = await probe.call("make", kind="aware_datetime")
    assert made == datetime.datetime(2024, 2, 29, 12, 30, 15, 250000, tzinfo=UTC)


async def test_kwargs_arrive_as_sent(probe: ModuleHandle) -> None:
    kwargs = {"a": 1, "b": [b"x"], "method": "not the call's method", "timeout_s": 3}
    assert await probe.call("echo_kwargs", **kwargs) == kwargs


async def test_tuples_and_sets_become_lists(probe: ModuleHandle) -> None:
    assert await probe.call("echo", value=(1, (2, 3))) == [1, [2, 3]]
    assert await probe.call("echo", value=frozenset({4})) == [4]
    assert await probe.call("make", kind="tuple") == [1, [2, 3], "x"]
    assert await probe.call("make", kind="set") == [7]
    assert await probe.call("make", kind="nested_tuple_in_dict") == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("object", "builtins.object"),
        ("unsendable", "plexisandbox_module_probe.Unsendable"),
        ("nested_unsendable", "plexisandbox_module_probe.Unsendable"),
        ("generator", "builtins.generator"),
        ("naive_datetime", "naive datetime.datetime"),
        ("too_big_int", "integer of 65 bits"),
        ("too_small_int", "integer of 64 bits"),
        ("lone_surrogate", "not valid UTF-8"),
    ],
)
async def test_unsendable_result_is_a_clear_module_error(
    probe: ModuleHandle, kind: str, named: str
) -> None:
    errors = probe.stats().errors
    with pytest.raises(ModuleError) as info:
        await probe.call("make", kind=kind)
    err = info.value
    assert err.remote_type == "TypeError"
    assert named in err.remote_message
    assert "cannot cross the sandbox boundary" in err.remote_message
    assert err.method == "make"
    # The worker is unharmed.
    assert await probe.call("echo", value=kind) == kind
    assert probe.stats().errors == errors + 1


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (object(), "builtins.object"),
        (2**64, "integer of 65 bits"),
        (datetime.datetime(2024, 1, 1), "naive datetime.datetime"),
        ({"deep": [complex(1, 2)]}, "builtins.complex"),
        ("\udcff", "not valid UTF-8"),
    ],
)
async def test_unsendable_argument_is_refused_on_the_host(
    probe: ModuleHandle, value: Any, named: str
) -> None:
    with pytest.raises(TypeError, match="cannot cross the sandbox boundary") as info:
        await probe.call("echo", value=value)
    assert named in str(info.value)
    assert probe.stats().in_flight == 0
    assert await probe.call("echo", value="fine") == "fine"


async def test_argument_larger_than_a_worker_accepts_is_refused_on_the_host(
    probe: ModuleHandle,
) -> None:
    from plexisandbox._protocol import DEFAULT_MAX_FRAME

    refusal = (
        rf"the call of echo\(\) encodes to \d+ bytes; a worker accepts frames of at most "
        rf"{DEFAULT_MAX_FRAME} bytes"
    )
    with pytest.raises(ValueError, match=refusal):
        await probe.call("echo", value=b"x" * (DEFAULT_MAX_FRAME + 1), timeout=10)
    assert probe.stats().in_flight == 0
    assert await probe.call("echo", value="unharmed", timeout=10) == "unharmed"


@pytest.mark.parametrize(
    ("method", "size", "named"),
    [
        ("nest", 80, "nests deeper than 64 levels"),
        ("tuple_key", 3, "a dict key is a tuple"),
        ("many", 1024 * 1024 + 1, "max_array_len"),
        ("bulk", 16 * 1024 * 1024, "Limits.max_message_bytes"),
        ("emit_bulk", 16 * 1024 * 1024, "Limits.max_message_bytes"),
        ("ask_bulk", 16 * 1024 * 1024, "Limits.max_message_bytes"),
    ],
)
async def test_answer_past_the_hosts_limits_fails_the_call_not_the_worker(
    probe: ModuleHandle, method: str, size: int, named: str
) -> None:
    # The host kills a worker whose frame breaks its limits; a module that only returned
    # (or emitted, or sent to a service) too much must see that one call fail instead.
    arg = {"nest": "depth", "many": "n"}.get(method, "size")
    with pytest.raises(ModuleError) as info:
        await probe.call(method, timeout=10, **{arg: size})
    assert info.value.remote_type == "ValueError"
    assert named in info.value.remote_message
    assert await probe.call("echo", value="unharmed") == "unharmed"


async def test_module_exception_arrives_with_type_message_and_traceback(
    probe: ModuleHandle,
) -> None:
    errors = probe.stats().errors
    for method in ("fail", "fail_sync"):
        with pytest.raises(ModuleError) as info:
            await probe.call(method, message=f"{method}: boom 42")
        err = info.value
        assert err.module == "probe"
        assert err.method == method
        assert err.remote_type == "ProbeFailure"
        assert err.remote_message == f"{method}: boom 42"
        assert "_explode" in err.remote_traceback
        assert "probe.py" in err.remote_traceback
        assert "raise ProbeFailure(message)" in err.remote_traceback
        assert "ProbeFailure" in str(err)
        assert "boom 42" in str(err)
        assert "traceback in the worker" in str(err)
    assert probe.stats().errors == errors + 2
    assert await probe.call("echo", value=1) == 1


async def test_exception_whose_str_raises_still_answers(probe: ModuleHandle) -> None:
    with anyio.fail_after(2), pytest.raises(ModuleError) as info:
        await probe.call("fail_broken_str", timeout=30)
    assert info.value.remote_type == "BrokenStr"


async def test_module_api_is_only_its_own_public_methods(probe: ModuleHandle) -> None:
    for method in ("nope", "_hook", "initialize", "shutdown", "get_config_schema", "call_method"):
        with pytest.raises(ModuleError) as info:
            await probe.call(method)
        assert info.value.remote_type == "AttributeError"
        assert f"has no API method {method!r}" in info.value.remote_message
        assert "echo" in info.value.remote_message  # it lists what is available
    assert probe.description["methods"] == sorted(probe.description["methods"])
    assert {"echo", "sleep", "fds"} <= set(probe.description["methods"])
    assert "initialize" not in probe.description["methods"]


async def test_wrong_arguments_are_a_module_error(probe: ModuleHandle) -> None:
    with pytest.raises(ModuleError) as info:
        await probe.call("echo", bogus=1)
    assert info.value.remote_type == "TypeError"
    assert "bogus" in info.value.remote_message


async def test_sync_method_does_not_block_the_workers_loop(probe: ModuleHandle) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: probe.call("block", seconds=30, token="blocker", timeout=60))

        async def blocking_started() -> bool:
            return "blocker" in (await probe.call("tokens"))["started"]

        await until(blocking_started)
        # The sync method holds its thread; async and sync calls still get answered.
        assert await probe.call("echo", value="async", timeout=10) == "async"
        assert await probe.call("echo_sync", value="sync", timeout=10) == "sync"
        assert "blocker" not in (await probe.call("tokens"))["finished"]
        tg.cancel_scope.cancel()


async def test_thousand_calls_in_flight_across_ten_modules() -> None:
    """Each call returns only when all 100 calls to its module are waiting in the worker at
    once, so this passes only if calls are truly pipelined (and answered by request id)."""
    async with Supervisor() as sup:
        handles: list[ModuleHandle] = []
        for i in range(10):  # (concurrent loads have their own test, in test_core_lifecycle)
            handle = await sup.load(PROBE, name=f"p{i}")
            await handle.start()
            handles.append(handle)

        results: dict[tuple[int, int], Any] = {}

        async def one(handle: ModuleHandle, m: int, k: int) -> None:
            value = {"module": m, "call": k, "payload": [k] * (k % 7)}
            results[m, k] = (
                await handle.call("rendezvous", group="g", n=100, value=value, timeout=60),
                value,
            )

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for m, handle in enumerate(handles):
                    for k in range(100):
                        tg.start_soon(one, handle, m, k)
        assert len(results) == 1000
        assert all(got == sent for got, sent in results.values())
        for handle in handles:
            stats = handle.stats()
            assert stats.calls == 100
            assert stats.in_flight == 0
            assert stats.errors == 0


async def test_in_flight_calls_are_bounded_per_module() -> None:
    limits = Limits(max_in_flight=3)
    async with Supervisor(limits=limits) as sup:
        probe = await sup.load(PROBE)
        await probe.start()
        async with anyio.create_task_group() as tg:
            for k in range(5):
                tg.start_soon(lambda k=k: probe.call("rendezvous", group="a", n=5, value=k))
            # Three calls fill every slot; the other two wait on the host, never reaching the
            # worker, so the rendezvous of five can never complete.
            await until(lambda: probe.stats().in_flight == 3)
            await anyio.sleep(0.3)
            assert probe.stats().in_flight == 3
            tg.cancel_scope.cancel()


async def test_call_waiting_for_a_slot_honours_its_deadline() -> None:
    async with Supervisor(limits=Limits(max_in_flight=1)) as sup:
        probe = await sup.load(PROBE)
        await probe.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: probe.call("sleep", seconds=30, token="holder", timeout=60))
            await until(lambda: probe.stats().in_flight == 1)
            with anyio.fail_after(10):  # a hang here is the bug: the deadline must count
                with pytest.raises(CallTimeout):
                    await probe.call("echo", value=1, timeout=0.3)
            tg.cancel_scope.cancel()


async def test_slots_come_back_from_callers_that_gave_up_waiting() -> None:
    """Callers that time out or are cancelled while waiting for a slot leave the count of
    slots whole: afterwards exactly max_in_flight calls run at once again, never more."""
    async with Supervisor(limits=Limits(max_in_flight=2)) as sup:
        probe = await sup.load(PROBE)
        await probe.start()
        for round_ in range(3):
            async with anyio.create_task_group() as tg:
                for k in range(2):
                    tg.start_soon(
                        lambda k=k: probe.call("sleep", seconds=30, token=f"h{k}", timeout=60)
                    )
                await until(lambda: probe.stats().in_flight == 2)
                with anyio.fail_after(10):
                    for _ in range(3):
                        with pytest.raises(CallTimeout):
                            await probe.call("echo", value=1, timeout=0.05)
                    with anyio.move_on_after(0.05) as waited:
                        await probe.call("echo", value=1)
                    assert waited.cancelled_caught
                tg.cancel_scope.cancel()
            await until(lambda: probe.stats().in_flight == 0)
            async with anyio.create_task_group() as tg:
                # Two slots: a rendezvous of two completes; a third call waits on the host.
                for k in range(3):
                    tg.start_soon(
                        lambda k=k, g=f"r{round_}": probe.call("rendezvous", group=g, n=3, value=k)
                    )
                await until(lambda: probe.stats().in_flight == 2)
                await anyio.sleep(0.2)
                assert probe.stats().in_flight == 2
                tg.cancel_scope.cancel()
            await until(lambda: probe.stats().in_flight == 0)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for k in range(2):
                        tg.start_soon(
                            lambda k=k, g=f"p{round_}": probe.call(
                                "rendezvous", group=g, n=2, value=k
                            )
                        )


async def test_example_echo_module_answers() -> None:
    async with Supervisor() as sup:
        echo = await sup.load(EXAMPLES / "echo.py")
        await echo.start()
        assert await echo.call("echo", value={"hi": [1, 2]}, timeout=5) == {"hi": [1, 2]}
        assert await echo.call("echo_sync", value=b"raw", timeout=5) == b"raw"


async def test_large_payloads_round_trip_and_grow_the_pipes(probe: ModuleHandle) -> None:
    """64 KiB to 8 MiB both ways, byte for byte; the first large frame grows both pipes (so
    a large payload costs a few wake-ups, not one per 64 KiB)."""
    import fcntl

    conn = probe._conn
    assert conn is not None
    for size in (64 * 1024 + 1, 1024 * 1024, 8 * 1024 * 1024):
        blob = bytes(range(256)) * (size // 256) + b"!" * (size % 256)
        assert await probe.call("echo", value=blob) == blob
    sizes = {
        fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        for fd in (conn.launched.data_write, conn.launched.data_read)
    }
    assert sizes == {1024 * 1024}


async def test_grown_pipes_are_bounded_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that send large frames cannot push the host past its pipe quota: only so
    many connections hold grown pipes at once, and a finished one gives its place back."""
    import fcntl

    import plexisandbox._worker as worker_module

    monkeypatch.setattr(worker_module, "_GROWN_PIPES_MAX", worker_module._grown_pipes + 1)
    blob = b"x" * (256 * 1024)

    def pipe_sizes(handle: ModuleHandle) -> set[int]:
        conn = handle._conn
        assert conn is not None
        fds = (conn.launched.data_write, conn.launched.data_read)
        return {fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) for fd in fds}

    async with Supervisor() as sup:
        first = await sup.load(PROBE, name="big1")
        second = await sup.load(PROBE, name="big2")
        for handle in (first, second):
            await handle.start()
            assert await handle.call("echo", value=blob) == blob
        assert pipe_sizes(first) == {1024 * 1024}
        assert pipe_sizes(second) == {64 * 1024}  # over the bound: stays as it was
        await sup.unload("big1")
        third = await sup.load(PROBE, name="big3")
        await third.start()
        assert await third.call("echo", value=blob) == blob
        assert pipe_sizes(third) == {1024 * 1024}
