"""Host side: the chat core — rooms, clients, and every message's path through the modules.

Transport-independent (the Starlette app in `app.py` feeds it WebSocket frames; the tests can
feed it directly) and written against anyio, so it runs on asyncio and trio alike.

A chat message goes: client → `/command`? → the command's module (`dice.roll`, `stats.summary`)
→ otherwise the filter hook (`wordfilter.filter`: pass / modify / reject) → the room → the
`chat.message` event (stats counts it, linkpreview previews it, …). Modules post back through
the `messages.send` host service, which requires MESSAGING. Everything a module returns is
treated as hostile input: shapes checked, sizes bounded, rendered as text by the page.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from plexisandbox import ModuleHandle, Supervisor
from plexisandbox.errors import (
    CallTimeout,
    ContractViolation,
    IllegalTransition,
    ModuleError,
    ModuleUnavailable,
    PermissionDenied,
    SandboxError,
    ServiceError,
)
from plexisandbox.interfaces import ModuleCapability, ModulePermissions, ModuleState

from .config import ModuleSpec, ServerConfig

__all__ = ["ADMIN_ACTIONS", "ChatServer", "Client"]

_log = logging.getLogger("plexichat")

MAX_TEXT = 2000
HISTORY = 50
MAX_ROOMS = 50
USER = re.compile(r"^[\w][\w .-]{0,23}$")
ROOM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
# Module names the chat core calls for its hooks and commands.
FILTER, DICE, STATS = "wordfilter", "dice", "stats"
ADMIN_ACTIONS = ("pause", "resume", "restart", "unload", "load")


class Client:
    """One connected chat user. Outgoing messages go through a bounded queue: a client that
    does not read its socket is disconnected instead of slowing the room down."""

    def __init__(self, send: MemoryObjectSendStream[dict[str, Any]], user: str = "") -> None:
        self._send = send
        self.user = user
        self.room: str | None = None
        #: Paces this client's frames (`ServerConfig.client_rate`); set by `connect()`.
        self.pace: _Bucket | None = None

    def deliver(self, payload: dict[str, Any]) -> bool:
        try:
            self._send.send_nowait(payload)
            return True
        except anyio.WouldBlock:
            _log.warning("client %r is not reading; disconnecting it", self.user)
            self._send.close()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        return False


@dataclass
class Room:
    name: str
    members: set[Client] = field(default_factory=set)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))


@dataclass
class ModuleEntry:
    """A configured module and what became of it: a live handle, or why there is none."""

    spec: ModuleSpec
    handle: ModuleHandle | None = None
    #: Without a handle: REFUSED (declares more than granted), INVALID (contract validation),
    #: LOAD_ERROR, UNLOADED, DISABLED.
    status: str = "UNLOADED"
    error: str | None = None
    missing: tuple[str, ...] = ()
    declared: ModulePermissions | None = None
    busy: bool = False


class _Bucket:
    """Token bucket: `rate` per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def delay(self) -> float:
        """Take a token; return how long to wait until it is really there (0: at once)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) - 1
        self.at = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class ChatServer:
    """Rooms, clients and modules of one chat server. `await start(sup)` inside the app's
    lifespan, with the `Supervisor` that owns the module workers."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.sup: Supervisor | None = None
        self.rooms: dict[str, Room] = {name: Room(name) for name in config.rooms}
        self.entries: dict[str, ModuleEntry] = {
            spec.name: ModuleEntry(spec, status="UNLOADED" if spec.enabled else "DISABLED")
            for spec in config.modules
        }
        self.probes: deque[dict[str, Any]] = deque(maxlen=100)
        self.clients: set[Client] = set()
        self.counters = {
            "messages": 0,
            "rejected": 0,
            "modified": 0,
            "commands": 0,
            "module_posts": 0,
            "hook_failures": 0,
        }
        self._ids = itertools.count(1)
        self._buckets: dict[str, _Bucket] = {}
        self.started_at = time.time()
        #: Called after every message a client sent was handled (latency measurements).
        self.on_handled: Callable[[], None] | None = None

    # -- start-up ----------------------------------------------------------------------------
    async def start(self, sup: Supervisor) -> None:
        """Register host services and load every enabled module, concurrently."""
        self.sup = sup
        sup.register_service(
            "messages.send", self._service_send, requires=ModuleCapability.MESSAGING
        )
        sup.register_service("rooms.list", self._service_rooms)
        sup.register_service("probes.report", self._service_probe)
        async with anyio.create_task_group() as tg:
            for entry in self.entries.values():
                if entry.spec.enabled:
                    tg.start_soon(self.load_module, entry.spec.name)

    def _supervisor(self) -> Supervisor:
        if self.sup is None:
            raise RuntimeError("the chat server has not started; await start(sup) first")
        return self.sup

    async def load_module(self, name: str) -> ModuleEntry:
        """Load and start one configured module; a refusal is recorded, never raised."""
        sup = self._supervisor()
        entry = self.entries[name]
        spec = entry.spec
        entry.error, entry.missing = None, ()
        options: dict[str, Any] = {}
        if not spec.validate:
            options["validate"] = False
        try:
            handle = await sup.load(
                spec.path,
                name=name,
                config=spec.config,
                grant=spec.grant,
                limits=spec.limits,
                restart=spec.restart,
                **options,
            )
        except ContractViolation as exc:
            entry.status, entry.handle = "INVALID", None
            entry.error = " ".join(line.strip() for line in str(exc).splitlines()[:3])[:500]
            _log.error("module %s refused by contract validation: %s", name, exc)
            return entry
        except PermissionDenied as exc:
            entry.status, entry.handle = "REFUSED", None
            entry.missing = tuple(getattr(exc, "missing", ()) or ())
            entry.error = f"declares {', '.join(entry.missing)}, which is not granted"
            _log.warning("module %s refused: %s", name, str(exc).splitlines()[0])
            try:  # what it declares, for the admin panel (read in a baseline-confined worker)
                described = await sup.describe(spec.path)
                entry.declared = ModulePermissions.from_dict(described["permissions"])
            except (SandboxError, OSError, ValueError, KeyError) as describe_exc:
                _log.info("could not describe %s: %s", name, describe_exc)
            return entry
        except (SandboxError, OSError, ValueError) as exc:
            entry.status, entry.handle = "LOAD_ERROR", None
            entry.error = str(exc).splitlines()[0][:500]
            _log.error("module %s failed to load: %s", name, exc)
            return entry
        entry.handle, entry.declared, entry.status = handle, handle.declared, "LOADED"
        try:
            await handle.start()
        except SandboxError as exc:
            entry.error = str(exc).splitlines()[0][:500]
            _log.error("module %s failed to start: %s", name, exc)
        return entry

    def close(self) -> None:
        """Disconnect every client."""
        for client in list(self.clients):
            client.deliver({"type": "system", "text": "The server is shutting down."})
        self.clients.clear()

    async def unload_all(self, grace: float = 10.0) -> None:
        """Unload every module, concurrently, before the Supervisor itself closes.

        The supervisor refuses `shutdown()` of a module caught mid-restart (INITIALIZING);
        such a module is retried until it settles, so that no worker outlives the server.
        """
        sup = self._supervisor()

        async def unload(name: str) -> None:
            with anyio.move_on_after(grace):
                while name in sup.modules:
                    try:
                        await sup.unload(name)
                    except IllegalTransition:
                        await anyio.sleep(0.05)
                    except KeyError:
                        return
            entry = self.entries.get(name)
            if entry is not None and entry.handle is not None:
                entry.handle, entry.status = None, "UNLOADED"

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for name in list(sup.modules):
                    tg.start_soon(unload, name)

    # -- clients and rooms -------------------------------------------------------------------
    def connect(self, client: Client) -> None:
        if self.config.client_rate > 0:
            client.pace = _Bucket(self.config.client_rate, self.config.client_burst)
        self.clients.add(client)

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        self._leave(client)

    def _leave(self, client: Client) -> None:
        room = self.rooms.get(client.room or "")
        client.room = None
        if room is not None and client in room.members:
            room.members.discard(client)
            self._presence(room)

    def _presence(self, room: Room) -> None:
        self.broadcast(room.name, {"type": "presence", "room": room.name, "users": _users(room)})

    def broadcast(self, room_name: str, payload: dict[str, Any], *, keep: bool = False) -> int:
        room = self.rooms.get(room_name)
        if room is None:
            return 0
        if keep:
            room.history.append(payload)
        return sum(client.deliver(payload) for client in list(room.members))

    def _room_list(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "users": len(r.members)} for r in self.rooms.values()]

    async def handle(self, client: Client, data: Any) -> None:
        """One frame from a client: `{"type": "hello"|"join"|"say", ...}`."""
        if client.pace is not None:
            # Every frame fans out (to the room, the modules, their events): one client
            # flooding would flood everyone. Paced, its frames wait in its own socket.
            delay = client.pace.delay()
            if delay > 0:
                await anyio.sleep(delay)
        try:
            if not isinstance(data, dict):
                raise ValueError("send a JSON object with a 'type'")
            kind = data.get("type")
            if kind == "hello":
                await self.hello(client, str(data.get("user", "")), str(data.get("room", "")))
            elif kind == "join":
                await self.join(client, str(data.get("room", "")))
            elif kind == "say":
                await self.say(client, str(data.get("text", "")))
            else:
                raise ValueError(f"unknown message type {kind!r}; use hello, join or say")
        except ValueError as exc:
            client.deliver({"type": "error", "text": str(exc)})
        finally:
            if self.on_handled is not None:
                self.on_handled()

    async def hello(self, client: Client, user: str, room: str) -> None:
        user = user.strip()
        if not USER.match(user):
            raise ValueError("pick a name of 1-24 letters, digits, spaces, dots or dashes")
        client.user = user
        client.deliver({"type": "welcome", "user": user, "rooms": self._room_list()})
        await self.join(client, room or self.config.rooms[0])

    async def join(self, client: Client, name: str) -> None:
        if not client.user:
            raise ValueError("say hello first: {'type': 'hello', 'user': 'ann'}")
        name = name.strip().lower().lstrip("#")
        if not ROOM.match(name):
            raise ValueError("room names are 1-24 lowercase letters, digits, - or _")
        if name not in self.rooms:
            if len(self.rooms) >= MAX_ROOMS:
                raise ValueError(f"there are already {MAX_ROOMS} rooms; join one of them")
            self.rooms[name] = Room(name)
        if client.room == name:
            return
        self._leave(client)
        room = self.rooms[name]
        room.members.add(client)
        client.room = name
        client.deliver(
            {
                "type": "joined",
                "room": name,
                "history": list(room.history),
                "users": _users(room),
                "rooms": self._room_list(),
            }
        )
        self._presence(room)
        await self._supervisor().emit("chat.join", {"room": name, "user": client.user})

    async def say(self, client: Client, text: str) -> None:
        if client.room is None:
            raise ValueError("join a room first")
        text = text.strip()
        if not text:
            return
        if len(text) > MAX_TEXT:
            raise ValueError(f"messages are limited to {MAX_TEXT} characters")
        if text.startswith("/"):
            self.counters["commands"] += 1
            await self.command(client, text)
            return
        verdict = await self.filter_hook(client, text)
        if verdict["action"] == "reject":
            self.counters["rejected"] += 1
            client.deliver({"type": "rejected", "text": text, "reason": verdict["reason"]})
            return
        modified = verdict["action"] == "modify"
        if modified:
            self.counters["modified"] += 1
            text = verdict["text"]
        self.counters["messages"] += 1
        message = {
            "type": "message",
            "id": next(self._ids),
            "room": client.room,
            "user": client.user,
            "text": text,
            "ts": time.time(),
            "filtered": modified,
        }
        self.broadcast(client.room, message, keep=True)
        await self._supervisor().emit(
            "chat.message",
            {k: message[k] for k in ("id", "room", "user", "text", "ts")},
        )

    # -- hooks and commands ------------------------------------------------------------------
    async def call(self, name: str, method: str, **kwargs: Any) -> Any:
        """Call a module with the hook deadline; raises ModuleUnavailable when it is absent."""
        entry = self.entries.get(name)
        handle = entry.handle if entry is not None else None
        if handle is None:
            status = entry.status if entry is not None else "not configured"
            raise ModuleUnavailable(
                f"module {name!r} is not running ({status})", module=name, state=status
            )
        return await handle.call(method, timeout=self.config.hook_timeout, **kwargs)

    async def filter_hook(self, client: Client, text: str) -> dict[str, str]:
        """The filter module's verdict, checked; `filter_unavailable` decides on failure."""
        try:
            verdict = await self.call(
                FILTER, "filter", text=text, user=client.user, room=client.room
            )
            return _check_verdict(verdict)
        except (SandboxError, ValueError) as exc:
            self.counters["hook_failures"] += 1
            _log.warning("filter hook failed (%s): %s", self.config.filter_unavailable, exc)
            if self.config.filter_unavailable == "reject":
                return {"action": "reject", "reason": "the message filter is unavailable"}
            return {"action": "pass"}

    async def command(self, client: Client, text: str) -> None:
        word, _, rest = text[1:].partition(" ")
        word, rest = word.lower(), rest.strip()
        assert client.room is not None
        if word == "help":
            client.deliver({"type": "system", "text": HELP})
        elif word == "join":
            await self.join(client, rest)
        elif word == "who":
            users = ", ".join(_users(self.rooms[client.room])) or "nobody"
            client.deliver({"type": "system", "text": f"In #{client.room}: {users}"})
        elif word == "roll":
            await self._roll(client, rest or "1d6")
        elif word == "stats":
            await self._stats(client)
        else:
            raise ValueError(f"unknown command /{word}; try /help")

    async def _roll(self, client: Client, spec: str) -> None:
        assert client.room is not None
        try:
            result = await self.call(DICE, "roll", spec=spec[:40])
        except ModuleError as exc:
            client.deliver({"type": "error", "text": f"dice: {exc.remote_message[:300]}"})
            return
        except SandboxError as exc:
            client.deliver({"type": "error", "text": _unavailable("dice", exc)})
            return
        rolls = result.get("rolls") if isinstance(result, dict) else None
        # Only a number: the total is stored in the room's history and sent to every client.
        total = _count(result.get("total")) if isinstance(result, dict) else None
        if (
            not isinstance(rolls, list)
            or not all(isinstance(r, int) for r in rolls)
            or total is None
        ):
            client.deliver({"type": "error", "text": "dice: the module answered nonsense"})
            return
        shown = " + ".join(str(r) for r in rolls[:50]) + (" + …" if len(rolls) > 50 else "")
        bonus = result.get("bonus", 0)
        if isinstance(bonus, int) and bonus:
            shown += f" {'+' if bonus > 0 else '-'} {abs(bonus)}"
        if len(rolls) > 1 or bonus:
            shown += f" = {total}"
        self._post(
            client.room,
            "dice",
            f"{client.user} rolled {spec[:40]}: {shown}",
            extra={"result": {"rolls": rolls[:50], "total": total}},
        )

    async def _stats(self, client: Client) -> None:
        try:
            summary = await self.call(STATS, "summary", room=client.room)
        except SandboxError as exc:
            client.deliver({"type": "error", "text": _unavailable("stats", exc)})
            return
        if not isinstance(summary, dict):
            client.deliver({"type": "error", "text": "stats: the module answered nonsense"})
            return
        top = summary.get("top")
        if not isinstance(top, list):
            top = []
        total, room_total = _count(summary.get("total")), _count(summary.get("room_total"))
        people = ", ".join(
            f"{t.get('user')} ({t.get('messages')})" for t in top[:5] if isinstance(t, dict)
        )
        text = (
            f"{total} messages in all, {room_total} in "
            f"#{client.room}. Most talkative: {people or 'nobody yet'}."
        )
        client.deliver(
            {
                "type": "bot",
                "module": "stats",
                "room": client.room,
                "text": text[:500],
                "stats": {"total": total, "room_total": room_total},
                "ts": time.time(),
            }
        )

    def _post(
        self, room: str, module: str, text: str, *, extra: dict[str, Any] | None = None
    ) -> int:
        payload = {
            "type": "bot",
            "id": next(self._ids),
            "room": room,
            "module": module,
            "text": text[:MAX_TEXT],
            "ts": time.time(),
            **(extra or {}),
        }
        return self.broadcast(room, payload, keep=True)

    # -- host services (called by modules; arguments are hostile input) ----------------------
    async def _service_send(self, room: Any = "general", text: Any = "", *, caller: str) -> Any:
        if not isinstance(room, str) or room not in self.rooms:
            raise ServiceError(f"no room named {str(room)[:40]!r}", module=caller)
        if not isinstance(text, str) or not text.strip():
            raise ServiceError("text must be a non-empty string", module=caller)
        bucket = self._buckets.setdefault(caller, _Bucket(rate=2.0, burst=10))
        if not bucket.take():
            raise ServiceError("rate limited: at most 2 messages a second", module=caller)
        self.counters["module_posts"] += 1
        return {"delivered": self._post(room, caller, text.strip()[:1000])}

    async def _service_rooms(self) -> list[dict[str, Any]]:
        return self._room_list()

    async def _service_probe(self, attempt: Any = "", outcome: Any = "", *, caller: str) -> bool:
        self.probes.append(
            {
                "module": caller,
                "attempt": str(attempt)[:100],
                "outcome": str(outcome)[:300],
                "ts": time.time(),
            }
        )
        return True

    # -- administration ----------------------------------------------------------------------
    async def admin(self, name: str, action: str) -> dict[str, Any]:
        """Run an operator action; returns the module's new row.

        Raises:
            KeyError: no such module. ValueError: the action does not apply now.
        """
        if action not in ADMIN_ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ADMIN_ACTIONS)}")
        entry = self.entries[name]
        if entry.busy:
            raise ValueError(f"module {name!r} is busy with another action; try again")
        entry.busy = True
        try:
            handle = entry.handle
            if action == "load":
                if handle is not None:
                    raise ValueError(f"module {name!r} is loaded; unload it first")
                await self.load_module(name)
            elif handle is None:
                raise ValueError(f"module {name!r} is {entry.status}; load it first")
            elif action == "unload":
                await self._supervisor().unload(name)
                entry.handle, entry.status = None, "UNLOADED"
            else:
                await getattr(handle, action)()
        except SandboxError as exc:
            raise ValueError(str(exc).splitlines()[0]) from exc
        finally:
            entry.busy = False
        _log.info("admin: %s %s -> %s", action, name, self.module_row(entry)["state"])
        return self.module_row(entry)

    def module_row(self, entry: ModuleEntry) -> dict[str, Any]:
        spec, handle = entry.spec, entry.handle
        declared = handle.declared if handle is not None else entry.declared
        row: dict[str, Any] = {
            "name": spec.name,
            "path": spec.path.name,
            "state": handle.state.name if handle is not None else entry.status,
            "error": entry.error,
            "declared": sorted(declared.names()) if declared is not None else None,
            "granted": sorted(spec.grant.names()),
            "missing": list(entry.missing),
            "limits": {"memory_mb": spec.limits.memory_mb, "cpu_percent": spec.limits.cpu_percent},
            "restart_policy": {
                "strategy": spec.restart.strategy.value,
                "max_restarts": spec.restart.max_restarts,
                "period": spec.restart.period,
            },
            "actions": _actions(handle),
            "contract": None,
        }
        if handle is None:
            row["confinement"] = {"layers": [], "missing": {}}
            row.update(dict.fromkeys(_STAT_KEYS))
            return row
        stats = handle.stats()
        last = stats.last_exit
        report = getattr(handle, "validation", None)
        if isinstance(report, dict):
            row["contract"] = {
                "score": report.get("score"),
                "violations": len(report.get("violations", ())),
                "warnings": len(report.get("warnings", ())),
            }
        row.update(
            {
                "description": str(handle.description.get("metadata", {}).get("description", ""))[
                    :200
                ]
                if isinstance(handle.description.get("metadata"), dict)
                else "",
                "confinement": {
                    "layers": list(stats.confinement_layers),
                    "missing": {
                        str(k): str(v)
                        for k, v in dict(handle.confinement.get("missing", {})).items()
                    },
                },
                "pid": stats.pid,
                "rss_bytes": stats.rss_bytes,
                "cpu_percent": stats.cpu_percent,
                "cpu_seconds": stats.cpu_seconds,
                "calls": stats.calls,
                "errors": stats.errors,
                "timeouts": stats.timeouts,
                "restarts": stats.restarts,
                "latency_p50_ms": stats.latency_p50_ms,
                "latency_p99_ms": stats.latency_p99_ms,
                "events_delivered": stats.events_delivered,
                "events_dropped": stats.events_dropped,
                "last_exit_cause": stats.last_exit_cause,
                "last_exit_reason": last.reason[:300] if last is not None else None,
                "last_exit_at": last.at if last is not None else None,
            }
        )
        return row

    def modules_json(self) -> dict[str, Any]:
        return {
            "modules": [self.module_row(entry) for entry in self.entries.values()],
            "probes": list(self.probes)[-30:],
            "server": {
                "mode": self.config.mode,
                "strict": self.config.strict,
                "uptime_seconds": round(time.time() - self.started_at, 1),
                "clients": len(self.clients),
                "rooms": self._room_list(),
                **self.counters,
            },
        }

    def metrics_text(self) -> str:
        """The supervisor's per-module metrics plus the chat server's own counters."""
        sup = self._supervisor()
        lines = [sup.metrics_text().rstrip("\n")]
        lines += [
            "# HELP plexichat_clients Connected chat clients.",
            "# TYPE plexichat_clients gauge",
            f"plexichat_clients {len(self.clients)}",
        ]
        for key, value in self.counters.items():
            lines += [
                f"# HELP plexichat_{key}_total Chat {key.replace('_', ' ')} since start.",
                f"# TYPE plexichat_{key}_total counter",
                f"plexichat_{key}_total {value}",
            ]
        lines += [
            "# HELP plexichat_module_up Whether the configured module has an ACTIVE worker.",
            "# TYPE plexichat_module_up gauge",
        ]
        for name, entry in self.entries.items():
            up = int(entry.handle is not None and entry.handle.state is ModuleState.ACTIVE)
            lines.append(f'plexichat_module_up{{module="{name}"}} {up}')
        return "\n".join(lines) + "\n"


_STAT_KEYS = (
    "description pid rss_bytes cpu_percent cpu_seconds calls errors timeouts restarts "
    "latency_p50_ms latency_p99_ms events_delivered events_dropped last_exit_cause "
    "last_exit_reason last_exit_at"
).split()

HELP = (
    "Commands: /roll 2d6 (dice module) · /stats (stats module) · /join ROOM · /who · /help. "
    "Plain messages pass the word filter module; the stats module counts them."
)


def _users(room: Room) -> list[str]:
    return sorted({c.user for c in room.members})


def _actions(handle: ModuleHandle | None) -> list[str]:
    if handle is None:
        return ["load"]
    state = handle.state
    if state is ModuleState.ACTIVE:
        return ["pause", "restart", "unload"]
    if state is ModuleState.PAUSED:
        return ["resume", "restart", "unload"]
    if state in (ModuleState.FAILED, ModuleState.ERROR, ModuleState.LOADED):
        return ["restart", "unload"]
    return []


def _unavailable(module: str, exc: SandboxError) -> str:
    if isinstance(exc, CallTimeout):
        return f"{module}: no answer in time"
    return f"{module}: the module is unavailable right now ({type(exc).__name__})"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_verdict(verdict: Any) -> dict[str, str]:
    """A filter verdict from module code: hostile input until its shape is checked."""
    if not isinstance(verdict, dict):
        raise ValueError(f"filter verdict must be a dict, got {type(verdict).__name__}")
    action = verdict.get("action")
    if action == "pass":
        return {"action": "pass"}
    if action == "modify":
        text = verdict.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise ValueError("filter verdict 'modify' needs a non-empty text")
        return {"action": "modify", "text": text.strip()}
    if action == "reject":
        return {"action": "reject", "reason": str(verdict.get("reason", "rejected"))[:200]}
    raise ValueError(f"filter verdict action must be pass, modify or reject, not {action!r}")
