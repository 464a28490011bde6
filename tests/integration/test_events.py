"""Events, host services and module-to-module calls through real workers (asyncio and trio)."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, Supervisor
from plexisandbox.errors import ModuleError
from plexisandbox.interfaces import ModuleCapability, ModulePermissions, ModuleState
from tests.conftest import EXAMPLES, TEST_MODULES, until

pytestmark = pytest.mark.anyio
LISTENER = TEST_MODULES / "ev_listener.py"
SINK = TEST_MODULES / "ev_sink.py"
MESSAGING = ModulePermissions(capabilities=[ModuleCapability.MESSAGING])


_until = functools.partial(until, timeout=5.0)


async def _load(sup: Supervisor, name: str, **config: Any) -> Any:
    messenger = config.pop("caps", None) == ["messaging"]
    source = f"{LISTENER}:{'Messenger' if messenger else 'Listener'}"
    limits = config.pop("limits", None)
    handle = await sup.load(source, name=name, config=config, grant=MESSAGING, limits=limits)
    await handle.start()
    return handle


async def test_pub_sub_across_three_modules_and_the_host() -> None:
    async with Supervisor() as sup:
        mods = [await _load(sup, f"m{i}") for i in range(3)]
        host_seen: list[tuple[str, Any, str]] = []
        sup.on("listener.*", lambda event, data, source: host_seen.append((event, data, source)))
        await sup.emit("chat.message", {"text": "hello"})

        async def all_saw() -> bool:
            seen = [await m.call("get_seen") for m in mods]
            return all(s == [{"text": "hello"}] for s in seen)

        await _until(all_saw)
        await _until(lambda: len(host_seen) == 3)
        assert sorted(d["module"] for _, d, _ in host_seen) == ["listener"] * 3
        assert {e for e, _, _ in host_seen} == {"listener.saw"}
        # The host learns which module emitted, from the supervisor, not from the payload.
        assert sorted(source for _, _, source in host_seen) == ["m0", "m1", "m2"]


async def test_only_subscribers_receive_and_wildcards_match() -> None:
    async with Supervisor() as sup:
        mod = await _load(sup, "sub")
        echo = await sup.load(EXAMPLES / "echo.py")
        await echo.start()
        assert await sup.emit("unrelated.event", 1) == 0
        assert await sup.emit("chat.anything.deep", 2) == 1  # fnmatch * spans dots
        await _until(lambda: _seen_is(mod, [2]))
        assert echo.stats().events_delivered == 0


async def _seen_is(mod: Any, expected: list[Any]) -> bool:
    return bool(await mod.call("get_seen") == expected)


async def test_events_keep_emission_order() -> None:
    async with Supervisor() as sup:
        mod = await _load(sup, "order")
        for i in range(200):
            await sup.emit("chat.n", i)
        await _until(lambda: _seen_is(mod, list(range(200))))


async def test_raising_handler_does_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="plexisandbox.module.raiser")
    async with Supervisor() as sup:
        mod = await _load(sup, "raiser")
        await sup.emit("boom", None)
        await sup.emit("chat.after", "still here")
        await _until(lambda: _seen_is(mod, ["still here"]))
        assert any("handler exploded" in r.getMessage() for r in caplog.records)
        health = await mod.health_check()
        assert health["metrics"]["errors"] == 1


async def test_handler_raising_cancelled_or_system_exit_fails_alone() -> None:
    # A careless handler that awaits a task it cancelled, or calls sys.exit(): the worker
    # keeps delivering (it stopped for good, or died), and each handler's context is its own.
    async with Supervisor() as sup:
        mod = await _load(sup, "careless")
        pid = mod.stats().pid
        await sup.emit("careless.cancel", None)
        await sup.emit("careless.exit", None)
        await sup.emit("careless.mark", "first")
        await sup.emit("careless.mark", "second")
        await sup.emit("chat.after", "still here")
        expected = [{"mark": "unset"}, {"mark": "unset"}, "still here"]
        await _until(lambda: _seen_is(mod, expected))
        assert mod.stats().pid == pid
        assert mod.stats().restarts == 0
        health = await mod.health_check()
        assert health["metrics"]["errors"] == 2


async def test_raising_host_handler_is_logged_and_others_still_receive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Supervisor() as sup:
        got: list[Any] = []

        def bad(data: Any) -> None:
            raise ValueError("host handler bug")

        sup.on("x", bad)
        sup.on("x", got.append)
        await sup.emit("x", 1)
        await sup.emit("x", 2)
        await _until(lambda: got == [1, 2])
        assert any("host handler bug" in (r.exc_text or "") for r in caplog.records)


async def test_slow_subscriber_with_full_queue_does_not_delay_a_fast_one() -> None:
    async with Supervisor() as sup:
        slow = await _load(sup, "slow", delay=0.5, limits=Limits(event_queue=5))
        fast = await _load(sup, "fast")
        started = time.monotonic()
        for i in range(50):
            await sup.emit("chat.burst", i)
        await _until(lambda: _seen_is(fast, list(range(50))))
        fast_time = time.monotonic() - started
        # The slow module took 5 events into its window; the rest were dropped and counted.
        assert slow.stats().events_dropped == 45
        assert slow.stats().events_delivered == 5
        assert fast.stats().events_dropped == 0
        assert fast_time < 2.0, f"fast subscriber waited {fast_time:.2f}s behind a slow one"


async def test_large_events_cannot_pile_up_towards_a_subscriber() -> None:
    # The window of unhandled events is counted in events (Limits.event_queue, 1000) and in
    # bytes: a module emitting 8 MiB events must not queue gigabytes towards an honest
    # subscriber that takes 10 ms per event (its channel's cap, its memory limit).
    async with Supervisor() as sup:
        sink = await sup.load(SINK, name="sink")
        await sink.start()
        pid = sink.pid
        emitter = await sup.load(SINK, name="emitter")
        await emitter.start()
        await emitter.call("emit_many", event="chat.big", count=100, size=8 << 20, timeout=60)
        await _until(lambda: sink.stats().events_delivered > 0)
        await anyio.sleep(1.0)
        stats = sink.stats()
        assert (stats.state, stats.pid, stats.last_exit) == (ModuleState.ACTIVE, pid, None)
        assert stats.events_dropped > 0
        assert stats.events_delivered + stats.events_dropped == 100

        async def all_handled() -> bool:
            return bool(await sink.call("get_handled") == stats.events_delivered)

        await _until(all_handled)


async def test_large_events_cannot_pile_up_towards_a_slow_host_handler() -> None:
    # A host subscription's queue is bounded in events (1000) and in bytes: a module emitting
    # 8 MiB events must not fill a slow handler's queue with gigabytes of the host's memory.
    received = 0

    async def slow(data: Any) -> None:
        nonlocal received
        received += 1
        await anyio.sleep(0.05)

    async with Supervisor() as sup:
        sup.on("chat.*", slow)
        emitter = await sup.load(SINK, name="emitter")
        await emitter.start()
        await emitter.call("emit_many", event="chat.big", count=100, size=8 << 20, timeout=60)
        (sub,) = sup.bus.host_subscriptions
        await _until(lambda: sub.dropped + received == 100)
        assert sub.dropped > 50
        assert sub.queued_bytes == 0


async def test_event_gate_limits_user_data_to_modules_that_declared_it() -> None:
    async with Supervisor() as sup:
        sup.gate_event("user.*", requires="user_data_access")
        mod = await _load(sup, "nogate")
        assert await sup.emit("user.login", {"user": "ann"}) == 0
        await sup.emit("chat.ok", 1)
        await _until(lambda: _seen_is(mod, [1]))


async def test_service_denied_without_messaging_is_audited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plexisandbox.audit")
    calls: list[Any] = []

    async def send(room: str, text: str) -> bool:
        calls.append((room, text))
        return True

    async with Supervisor() as sup:
        sup.register_service("messages.send", send, requires=ModuleCapability.MESSAGING)
        mod = await _load(sup, "nomsg")
        with pytest.raises(ModuleError) as info:
            await mod.call("send", text="hi")
        assert info.value.remote_type == "PermissionDenied"
        assert "messaging" in info.value.remote_message
        assert calls == []
        assert any(
            "module=nomsg service='messages.send' decision=denied" in r.getMessage()
            for r in caplog.records
        )


async def test_service_allowed_with_messaging_gets_caller() -> None:
    calls: list[Any] = []

    async def send(room: str, text: str, caller: str) -> dict[str, Any]:
        calls.append((caller, room, text))
        return {"delivered": True}

    async with Supervisor() as sup:
        sup.register_service("messages.send", send, requires=ModuleCapability.MESSAGING)
        mod = await _load(sup, "withmsg", caps=["messaging"])
        assert await mod.call("send", text="hi") == {"delivered": True}
        assert calls == [("withmsg", "general", "hi")]


async def test_service_exception_does_not_leak_host_internals() -> None:
    def send(room: str, text: str) -> None:
        raise RuntimeError("postgres://admin:hunter2@db/prod is down")

    async with Supervisor() as sup:
        sup.register_service("messages.send", send, requires=ModuleCapability.MESSAGING)
        mod = await _load(sup, "leak", caps=["messaging"])
        with pytest.raises(ModuleError) as info:
            await mod.call("send", text="hi")
        assert info.value.remote_type == "ServiceError"
        assert "hunter2" not in str(info.value)
        assert "RuntimeError" in info.value.remote_message


@pytest.mark.parametrize(
    ("kind", "target", "kwargs"),
    [
        ("service", "messages.send", {1: 2}),  # keyword names that are not strings
        ("module", "neighbour", {1: 2}),
        ("service", "messages.send", {"no_such_argument": 1}),  # the service raises
    ],
    ids=["service-int-keys", "module-int-keys", "service-raises"],
)
async def test_a_flood_of_failing_requests_does_not_flood_the_host_log(
    caplog: pytest.LogCaptureFixture, kind: str, target: str, kwargs: dict[Any, Any]
) -> None:
    # A module may send requests as fast as it likes; each failure it causes must not write
    # a traceback into the host's log (its own output is limited to 500 lines/s).
    caplog.set_level(logging.INFO)
    async with Supervisor() as sup:
        sup.register_service("messages.send", lambda room, text: True)
        neighbour = await sup.load(EXAMPLES / "echo.py", name="neighbour")
        await neighbour.start()
        flood = await sup.load(TEST_MODULES / "request_flood.py", validate=False)
        await flood.start()
        answer = await flood.call("ask", kind=kind, target=target, kwargs=kwargs)
        assert answer.startswith("ServiceError: ")
        if kwargs == {1: 2}:
            assert "keyword argument names must be strings" in answer
        sent = await flood.call("flood", kind=kind, target=target, kwargs=kwargs, seconds=1.0)
        assert sent > 1000
        assert await neighbour.call("echo", value=1) == 1
    # The 1st, 10th, 100th and every 1000th failure: a handful, not one per request.
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) <= 20, f"{len(tracebacks)} tracebacks logged for {sent} requests"


async def test_module_to_module_call_and_a_b_a_cycle_complete() -> None:
    async with Supervisor() as sup:
        a = await _load(sup, "a")
        b = await _load(sup, "b")
        echo = await sup.load(EXAMPLES / "echo.py")
        await echo.start()
        assert await a.call("call_other", target="echo", method="echo", value=[1, 2]) == [1, 2]
        with anyio.fail_after(10):
            assert await a.call("bounce", target="b", back="a", depth=6) == 6
        assert b.stats().calls == 3  # depths 5, 3 and 1 went to b


async def test_module_call_gate_requires_capability_of_caller() -> None:
    async with Supervisor() as sup:
        guarded = await sup.load(EXAMPLES / "echo.py", call_requires=ModuleCapability.MESSAGING)
        await guarded.start()
        a = await _load(sup, "plain")
        with pytest.raises(ModuleError) as info:
            await a.call("call_other", target="echo", method="echo", value=1)
        assert info.value.remote_type == "PermissionDenied"
        allowed = await _load(sup, "allowed", caps=["messaging"])
        assert await allowed.call("call_other", target="echo", method="echo", value=1) == 1


_PLAIN_ASYNCIO_HOST = """
import asyncio, sys
from plexisandbox import Supervisor
from plexisandbox.interfaces import ModuleCapability, ModulePermissions, ModuleState

async def main():
    grant = ModulePermissions(capabilities=[ModuleCapability.MESSAGING])
    async with Supervisor(grant=grant) as sup:
        sup.register_service("messages.send", lambda room, text: f"{room}:{text}",
                             requires=ModuleCapability.MESSAGING)
        mod = await sup.load(sys.argv[1] + ":Messenger", name="plain")
        await mod.start()
        print(await mod.call("send", text="hi", timeout=10))

asyncio.run(main())
"""


def test_host_services_work_under_plain_asyncio_run() -> None:
    # Not under anyio's test runner: a host embedding us with asyncio.run() has no sniffio
    # context in event-loop callbacks, which is where worker frames are read.
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [sys.executable, "-c", _PLAIN_ASYNCIO_HOST, str(LISTENER)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "general:hi"
    assert "never awaited" not in done.stderr
