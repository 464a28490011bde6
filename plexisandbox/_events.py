"""Host side: the event bus and the host-service registry, both permission-checked.

Events: a module subscribes with `register_event_handler` (even in `__init__`), the host with
`Supervisor.on()`. Only subscribers receive an event; patterns may use wildcards
(`message.*`). Delivery never blocks the emitter: each subscriber has a bounded window of
unacknowledged events (`Limits.event_queue`); past it, the *newest* event for that subscriber
is dropped and counted (`stats().events_dropped`, a warning in the log) — never silently.
Events from one emitter reach each subscriber in emission order (one FIFO pipe per worker,
one consumer task per host handler).

Services: the embedding application registers async (or sync) functions by name with the
permission or capability they require; every call from a module is checked against what the
module declared (and was granted, which load() already enforced) and audited.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from .errors import PermissionDenied, ServiceError
from .interfaces import ModuleCapability, ModulePermissions

__all__ = ["EventBus", "HostSubscription", "Service", "normalize_requirements", "run_service"]

audit_log = logging.getLogger("plexisandbox.audit")
_log = logging.getLogger("plexisandbox.events")
#: Encoded bytes of events one host subscription may hold unhandled, beside its queue length:
#: a module emitting 16 MiB events must not make a slow handler's queue of 1000 hold 16 GiB
#: of the host's memory. One event is always queued, whatever its size.
MAX_QUEUED_BYTES = 32 * 1024 * 1024


def normalize_requirements(requires: Any) -> frozenset[str]:
    """`ModuleCapability.MESSAGING`, `"user_data_access"`, or an iterable of them → names."""
    if requires is None:
        return frozenset()
    if isinstance(requires, ModuleCapability | str):
        requires = [requires]
    names = set()
    for item in requires:
        if isinstance(item, ModuleCapability):
            names.add(item.value)
        else:
            # Validates the name: a flag or a capability, case-insensitive.
            names |= ModulePermissions.from_names([str(item)]).names()
    return frozenset(names)


def matches(pattern: str, event: str) -> bool:
    """Exact name, or a shell-style wildcard pattern (`message.*`, `*`)."""
    return pattern == event or fnmatchcase(event, pattern)


@dataclass
class Service:
    """A registered host service."""

    name: str
    function: Callable[..., Any]
    requires: frozenset[str]
    wants_caller: bool
    calls: int = 0
    denied: int = 0


@dataclass(eq=False)
class HostSubscription:
    """One `Supervisor.on()` registration: its own ordered, bounded queue and consumer."""

    pattern: str
    handler: Callable[..., Any]
    send: MemoryObjectSendStream[tuple[str, Any, str, int]]
    dropped: int = 0
    #: Encoded size of the events in its queue (see MAX_QUEUED_BYTES).
    queued_bytes: int = 0
    errors: int = 0
    delivered: int = 0
    #: 1: handler(data); 2: handler(event, data); 3: handler(event, data, source)
    arity: int = field(default=1)


class EventBus:
    """Routes events between modules and the host; holds gates and host subscriptions."""

    def __init__(self) -> None:
        self.host_subscriptions: list[HostSubscription] = []
        self.gates: list[tuple[str, frozenset[str]]] = []
        self.services: dict[str, Service] = {}

    # -- gates --------------------------------------------------------------------------------
    def gate(self, pattern: str, requires: Any) -> None:
        """Only modules holding `requires` receive events matching `pattern`."""
        self.gates.append((pattern, normalize_requirements(requires)))

    def allowed(self, event: str, permissions: ModulePermissions | None) -> bool:
        """Whether a module with `permissions` may receive `event`."""
        held = permissions.names() if permissions is not None else frozenset()
        return all(req <= held for pattern, req in self.gates if matches(pattern, event))

    # -- host subscriptions ---------------------------------------------------------------
    def subscribe_host(
        self, tg: anyio.abc.TaskGroup, pattern: str, handler: Callable[..., Any], queue: int
    ) -> Callable[[], None]:
        send, receive = anyio.create_memory_object_stream[tuple[str, Any, str, int]](queue)
        sub = HostSubscription(pattern, handler, send, arity=min(3, _positional_count(handler)))
        self.host_subscriptions.append(sub)

        async def consume() -> None:
            async with receive:
                async for event, data, source, size in receive:
                    sub.queued_bytes -= size
                    try:
                        args = ((data,), (event, data), (event, data, source))[sub.arity - 1]
                        result = sub.handler(*args)
                        if inspect.isawaitable(result):
                            await result
                        sub.delivered += 1
                    except Exception:
                        sub.errors += 1
                        _log.exception(
                            "host handler %r for event %r (from %s) failed",
                            getattr(handler, "__qualname__", handler),
                            event,
                            source,
                        )

        tg.start_soon(consume)

        def unsubscribe() -> None:
            if sub in self.host_subscriptions:
                self.host_subscriptions.remove(sub)
                send.close()

        return unsubscribe

    def close(self) -> None:
        """End every host subscription (their consumer tasks finish)."""
        for sub in self.host_subscriptions:
            sub.send.close()
        self.host_subscriptions.clear()

    def host_wants(self, event: str) -> bool:
        """Whether a host subscription matches `event`."""
        return any(matches(sub.pattern, event) for sub in self.host_subscriptions)

    def deliver_to_host(self, event: str, data: Any, source: str, size: int = 0) -> None:
        """Queue an event for every matching host subscription; `size`: its encoded bytes."""
        for sub in self.host_subscriptions:
            if not matches(sub.pattern, event):
                continue
            try:
                if sub.queued_bytes and sub.queued_bytes + size > MAX_QUEUED_BYTES:
                    raise anyio.WouldBlock
                sub.send.send_nowait((event, data, source, size))
                sub.queued_bytes += size
            except anyio.WouldBlock:
                sub.dropped += 1
                if sub.dropped in (1, 10, 100) or sub.dropped % 1000 == 0:
                    _log.warning(
                        "host handler for %r is not keeping up: %d events dropped",
                        sub.pattern,
                        sub.dropped,
                    )
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

    # -- services -------------------------------------------------------------------------
    def register_service(self, name: str, function: Callable[..., Any], requires: Any) -> None:
        if not callable(function):
            raise TypeError(f"service {name!r} must be callable")
        if name in self.services:
            raise ValueError(f"a service named {name!r} is already registered")
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        self.services[name] = Service(
            name, function, normalize_requirements(requires), "caller" in params
        )

    def check_service(self, module: str, service: str, held: frozenset[str]) -> Service:
        """The service when `module` may call it; every decision is audited.

        Raises:
            ServiceError: no such service.
            PermissionDenied: the module does not hold what the service requires.
        """
        svc = self.services.get(service)
        if svc is None:
            audit_log.info("module=%s service=%r decision=unknown", module, service)
            known = ", ".join(sorted(self.services)) or "none"
            raise ServiceError(
                f"no host service named {service!r} (registered: {known})", module=module
            )
        missing = sorted(svc.requires - held)
        if missing:
            svc.denied += 1
            audit_log.warning(
                "module=%s service=%r decision=denied missing=%s",
                module,
                service,
                ",".join(missing),
            )
            raise PermissionDenied(
                f"module {module!r} may not call host service {service!r}: it requires "
                f"{', '.join(missing)}, which the module did not declare in "
                "get_required_permissions() (and the operator must grant)",
                module=module,
                missing=missing,
            )
        svc.calls += 1
        audit_log.info("module=%s service=%r decision=allowed", module, service)
        return svc


async def run_service(
    svc: Service, module: str, kwargs: dict[str, Any], limiter: anyio.CapacityLimiter
) -> Any:
    """Call a service function; sync functions run in a thread, at most `limiter`'s tokens
    at once for this module (one module hammering a slow service cannot take every thread)."""
    if svc.wants_caller:
        kwargs = {**kwargs, "caller": module}
    function: Callable[..., Any] = svc.function
    if inspect.iscoroutinefunction(function):
        return await function(**kwargs)
    result = await anyio.to_thread.run_sync(lambda: function(**kwargs), limiter=limiter)
    if inspect.isawaitable(result):
        return await result
    return result


def _positional_count(handler: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    return max(1, sum(1 for p in params if p.kind in kinds))
