"""Host side: the `Supervisor` — loads modules into workers and relays everything between them."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from ._events import EventBus, normalize_requirements, run_service
from ._handle import ModuleHandle, ModuleStats
from ._launcher import LaunchedWorker, launch_worker
from ._limits import Limits, RestartPolicy
from ._metrics import metrics_text
from ._policy import HostFacts, file_access_declared
from ._protocol import DEFAULT_MAX_FRAME, Op, encode
from ._sources import check_name, resolve_source
from ._uids import UidAllocator, UidLease
from ._watchdog import Watchdog
from ._worker import WorkerConnection
from ._zygote import Zygote, zygote_default
from .errors import ConfinementUnavailable, PermissionDenied, SandboxError, ServiceError
from .interfaces import ModulePermissions

__all__ = ["Supervisor"]

_log = logging.getLogger("plexisandbox")
audit_log = logging.getLogger("plexisandbox.audit")


class Supervisor:
    """Runs modules in confined worker processes. Use as `async with Supervisor() as sup:`.

    `grant`, `limits` and `restart` are the defaults for every module; `load()` overrides them
    per module. The default grant is the baseline: nothing beyond it. `strict=True` refuses a
    module whose required confinement layer the kernel cannot give. `watchdog_interval` is
    the seconds between two psutil samples of every worker (see `Limits` for what is enforced).
    `zygote=True` forks workers from a pre-started clean interpreter instead of launching
    each one: the interpreter start and imports (~60 ms per worker here) are paid once; the
    confinement is the same. The default is on when the environment has
    `PLEXISANDBOX_ZYGOTE=1`.
    """

    def __init__(
        self,
        *,
        grant: ModulePermissions | None = None,
        limits: Limits | None = None,
        restart: RestartPolicy | None = None,
        strict: bool = True,
        data_root: str | os.PathLike[str] | None = None,
        log_level: int = logging.INFO,
        watchdog_interval: float = 1.0,
        zygote: bool | None = None,
    ) -> None:
        self.default_grant = grant if grant is not None else ModulePermissions()
        self.default_limits = limits if limits is not None else Limits()
        self.default_restart = restart if restart is not None else RestartPolicy()
        self.strict = strict
        self.data_root = os.fspath(data_root) if data_root is not None else None
        self.log_level = log_level
        self.host_facts = HostFacts.detect()
        self._uids = UidAllocator()  # one uid per live worker when root (issue 3)
        #: The next worker's uid, leased while the host waits for a worker to start (a lease
        #: creates and locks a file: ~0.1 ms that need not lie on the start-up path).
        self._spare_lease: tuple[UidAllocator, UidLease] | None = None
        self._modules: dict[str, ModuleHandle] = {}
        #: Requests per module that ended in an unexpected exception (see _serve_request).
        self._failed_requests: dict[str, int] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.bus = EventBus()
        #: Samples every worker each `watchdog_interval` seconds and enforces its Limits.
        self.watchdog = Watchdog(self, interval=watchdog_interval)
        self.use_zygote = zygote_default() if zygote is None else zygote
        #: The zygote workers are forked from (`zygote=True`), started at the first load.
        self.zygote: Zygote | None = None

    # -- context -----------------------------------------------------------------------------
    async def __aenter__(self) -> Supervisor:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self.watchdog.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.aclose()
        finally:
            self._tg.cancel_scope.cancel()
            # The body's own exception (PermissionDenied, …) must reach the caller as itself,
            # not wrapped in an ExceptionGroup: the task group reports only its tasks' failures.
            await self._tg.__aexit__(None, None, None)
            self._tg = None
        return None

    async def aclose(self) -> None:
        """Shut every module down (each bounded by a grace period), concurrently."""

        async def shut(handle: ModuleHandle) -> None:
            try:
                await handle.shutdown()
            except Exception:  # one module's failure must not keep the others running
                _log.exception("module %s: shutdown failed; its worker is killed", handle.name)

        async with anyio.create_task_group() as tg:
            for handle in list(self._modules.values()):
                tg.start_soon(shut, handle)
        self._modules.clear()
        self.bus.close()
        if self._spare_lease is not None:
            self._spare_lease[1].release()
            self._spare_lease = None
        if self.zygote is not None:
            await self.zygote.aclose()
            self.zygote = None

    async def _launch(
        self, env: dict[str, str], paths: list[str] | None = None, first: bytes = b""
    ) -> LaunchedWorker:
        """Start one worker process: forked by the zygote, or launched. `paths`: the policy's
        Landlock paths (the zygote prepares their mount namespace); `first`: a frame put into
        the worker's input ahead of its start (BOOT, see `_launcher.write_ahead`)."""
        if not self.use_zygote:
            return launch_worker(env, first)
        if self.zygote is None:
            self.zygote = Zygote(self._task_group)
        return await self.zygote.spawn(env, paths=paths, first=first)

    def _lease_uid(self) -> UidLease:
        """A worker's uid lease: the one leased ahead, else a new one.

        Raises:
            OSError: no uid is free.
        """
        spare, self._spare_lease = self._spare_lease, None
        if spare is not None:
            if spare[0] is self._uids:
                return spare[1]
            spare[1].release()  # leased from an allocator since replaced
        return self._uids.acquire()

    def _lease_ahead(self) -> None:
        """Lease the next worker's uid now, while nothing else waits for the host."""
        if self._spare_lease is None and self._tg is not None:
            try:
                self._spare_lease = (self._uids, self._uids.acquire())
            except OSError:
                pass  # the next start tries again and reports it

    @property
    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError(
                "the Supervisor is not running; use it as `async with Supervisor() as sup:`"
            )
        return self._tg

    # -- modules -----------------------------------------------------------------------------
    @property
    def modules(self) -> Mapping[str, ModuleHandle]:
        """Loaded modules by name (read-only view)."""
        return dict(self._modules)

    async def load(
        self,
        source: Any,
        *,
        config: Mapping[str, Any] | None = None,
        grant: ModulePermissions | None = None,
        limits: Limits | None = None,
        restart: RestartPolicy | None = None,
        name: str | None = None,
        strict: bool | None = None,
        call_requires: Any = None,
        validate: bool = True,
    ) -> ModuleHandle:
        """Start a worker for `source`, check its declaration against the grant, configure it.

        `source` is a `.py` path (optionally `path.py:Class`), `"package.module:Class"`, an
        entry point name in group `plexisandbox.modules`, or a BaseModule subclass. The module
        is LOADED afterwards; call `start()` on the handle. `call_requires` names permissions
        or capabilities another module must hold to call this one's methods. With
        `validate=True` (the default) the module is checked against the seed's contracts
        (statically, and from what its worker reported) and refused if it has violations;
        the report is kept on `handle.validation`.

        Raises:
            PermissionDenied: the module declares permissions the grant does not give.
            ConfigInvalid: `config` does not match the module's schema.
            ConfinementUnavailable: strict mode and a required layer is missing here.
            ContractViolation: validation found violations (`.report` has them); pass
                `validate=False` to load it anyway.
            ModuleError: importing or instantiating the module raised.
            ValueError: the name is invalid or already in use.
        """
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(
                f"config must be a mapping (a dict of the module's settings), got "
                f"{type(config).__name__}"
            )
        resolved = resolve_source(source)
        module_name = check_name(name or resolved.default_name)
        if module_name in self._modules:
            raise ValueError(
                f"a module named {module_name!r} is already loaded; pass name= to load another "
                "copy, or unload() it first"
            )
        self._check_read_paths(
            module_name, resolved.read_paths, self.strict if strict is None else strict
        )
        handle = ModuleHandle(
            self,
            module_name,
            resolved,
            config=dict(config or {}),
            grant=grant if grant is not None else self.default_grant,
            limits=limits if limits is not None else self.default_limits,
            restart=restart if restart is not None else self.default_restart,
            strict=self.strict if strict is None else strict,
        )
        handle.call_requires = normalize_requirements(call_requires)
        self._modules[module_name] = handle
        try:
            await handle._load()
            if validate:
                from ._validation import enforce, validate_description

                handle.validation = await validate_description(
                    handle.description,
                    file=resolved.file,
                    label=resolved.label,
                    base_limits=handle.limits,
                )
                enforce(handle.validation, module=module_name)
        except BaseException:
            # Only this load's entry: unloaded meanwhile, the name may hold another load now.
            if self._modules.get(module_name) is handle:
                del self._modules[module_name]
            with anyio.CancelScope(shield=True):
                await handle.shutdown()
            raise
        return handle

    def _check_read_paths(self, module: str, read_paths: tuple[str, ...], strict: bool) -> None:
        """A module reads its own folder. Where workers cannot each have a uid of their own
        (a non-root host), their data folders are told apart by Landlock alone: a module
        whose folder holds the data root (a module file straight in /tmp) could read every
        other module's data. Refused in strict mode, logged otherwise.

        Raises:
            ConfinementUnavailable: such a module on such a host, in strict mode.
        """
        if self.host_facts.is_root:
            return  # each worker has its own uid, and each data folder is 0700
        root = os.path.realpath(self.data_root or tempfile.gettempdir())
        for path in read_paths:
            folder = os.path.realpath(path)
            if root == folder or root.startswith(folder.rstrip("/") + "/"):
                detail = (
                    f"the module's folder {folder} holds the data root {root}, where other "
                    "modules keep their data, and on this host (not root) only Landlock keeps "
                    "workers apart; move the module into a folder of its own, or pass "
                    "Supervisor(data_root=...) outside it"
                )
                if strict:
                    raise ConfinementUnavailable(module=module, layer="landlock", detail=detail)
                _log.warning("module %s runs degraded: %s", module, detail)

    async def unload(self, name: str) -> None:
        """Shut the module down and forget it.

        Raises:
            KeyError: no module of that name.
        """
        handle = self._modules.get(name)
        if handle is None:
            raise KeyError(f"no module named {name!r}; loaded: {sorted(self._modules)}")
        try:
            await handle.shutdown()
        finally:
            self._modules.pop(name, None)

    async def describe(self, source: Any, *, timeout: float = 20.0) -> dict[str, Any]:
        """Import `source` in a worker confined to the baseline and return what it declares
        (class, name, version, permissions, schema, metadata, methods, signatures, api_version,
        subscriptions); the worker is discarded. Used by contract validation and the CLI.

        Raises:
            ModuleError: importing or instantiating the module raised.
            WorkerCrashed, ProtocolViolation: the worker misbehaved.
        """
        resolved = resolve_source(source)
        handle = ModuleHandle(
            self,
            check_name(resolved.default_name),
            resolved,
            config={},
            grant=ModulePermissions(),
            limits=self.default_limits,
            restart=self.default_restart,
            strict=self.strict,
        )
        with anyio.fail_after(timeout):
            conn = await handle._spawn(handle._policy_for(ModulePermissions()))
        await handle._close(conn)
        return handle.description

    def stats(self) -> dict[str, ModuleStats]:
        """`stats()` of every module, by name."""
        return {name: handle.stats() for name, handle in self._modules.items()}

    def metrics_text(self) -> str:
        """Every module's statistics in the Prometheus text exposition format (0.0.4), for
        an operator's existing scraper: serve it at `/metrics`."""
        return metrics_text(self.stats(), watchdog=self.watchdog)

    def data_dir_for(self, name: str, declared: ModulePermissions) -> str | None:
        """The private data folder of a module that declared file access, else None.

        Without `data_root=`, folders live in a per-supervisor temporary root (mode 0711:
        workers traverse it, never list it), kept across restarts of the module.
        """
        if not file_access_declared(declared):
            return None
        if self.data_root is None:
            self.data_root = tempfile.mkdtemp(prefix="plexisandbox-data-")
            os.chmod(self.data_root, 0o711)
        return os.path.join(os.path.realpath(self.data_root), name)

    # -- events and services -----------------------------------------------------------------
    def on(
        self, pattern: str, handler: Callable[..., Any], *, queue: int = 1000
    ) -> Callable[[], None]:
        """Subscribe the host to events matching `pattern` (wildcards allowed: `chat.*`).

        `handler(data)`, `handler(event, data)` or `handler(event, data, source)` (`source`:
        the emitting module's name, or "host"), sync or async; it runs in its own task, in
        emission order. Its exceptions are logged and counted, never propagated. Returns a
        function that unsubscribes.
        """
        return self.bus.subscribe_host(self._task_group, pattern, handler, queue)

    async def emit(self, event: str, data: Any = None, *, source: str = "host") -> int:
        """Publish `event` to every subscribed module and host handler; never blocks on them.

        Returns the number of module subscribers it was queued for.

        Raises:
            TypeError: `data` cannot be carried by msgpack.
            ValueError: the event encodes to more than a worker accepts (16 MiB).
        """
        return self._publish(event, data, source, None)

    def gate_event(self, pattern: str, requires: Any) -> None:
        """Only modules holding `requires` (e.g. `"user_data_access"`) receive matching events."""
        self.bus.gate(pattern, requires)

    def register_service(
        self, name: str, function: Callable[..., Any], *, requires: Any = None
    ) -> None:
        """Offer `function` to modules as host service `name` (`await self.host.call(name, ...)`).

        Every call is checked against the module's declared (and granted) permissions and
        audited on the `plexisandbox.audit` logger. If `function` has a `caller` parameter it
        receives the calling module's name. Raise `ServiceError` to send a message back to the
        module; any other exception reaches it only as "service failed".
        """
        self.bus.register_service(name, function, requires)

    def _publish(self, event: str, data: Any, source: str, exclude: ModuleHandle | None) -> int:
        targets = [
            handle
            for handle in self._modules.values()
            if handle is not exclude
            and handle.wants(event)
            and self.bus.allowed(event, handle.declared)
        ]
        if not targets and exclude is not None and not self.bus.host_wants(event):
            # A module's event nobody listens to: not encoded again. (Re-encoding 16 MiB of
            # tiny strings costs the host ~0.4 s; a module could repeat it at no cost.)
            return 0
        frame = encode([Op.EVENT, event, data, source])  # encoded once for all subscribers
        if len(frame) - 4 > DEFAULT_MAX_FRAME:
            # A frame a worker would refuse: refuse it here, before any subscriber dies of it.
            raise ValueError(
                f"event {event[:80]!r} from {source} encodes to {len(frame) - 4} bytes; "
                f"events are limited to {DEFAULT_MAX_FRAME} bytes"
            )
        queued = 0
        for handle in targets:
            queued += handle.deliver_event(frame)
        self.bus.deliver_to_host(event, data, source, len(frame))
        return queued

    # -- messages from workers ---------------------------------------------------------------
    def _on_worker_message(self, conn: WorkerConnection, op: Op, message: list[Any]) -> None:
        handle = self._modules.get(conn.name)
        if handle is None or not handle.owns(conn):
            # A probe worker, or one being replaced: nothing of it is relayed.
            if op is Op.REQUEST:
                conn.reply(message[1], False, ["ServiceError", "the module is not loaded yet"])
            return
        if op is Op.SUBSCRIBE:
            if not handle.subscribe(message[1]):
                conn.violate(
                    "subscribed to more than 256 event patterns (or one longer than 200 characters)"
                )
        elif op is Op.EVENT_DONE:
            if not handle.events_handled(message[1]):
                conn.violate(f"reported {message[1]} events handled, more than it was sent")
        elif op is Op.EMIT:
            try:
                self._publish(message[1][:200], message[2], handle.name, handle)
            except (TypeError, ValueError) as exc:
                conn.violate(f"emitted an event that cannot be delivered: {exc}")
        elif op is Op.REQUEST:
            if handle.requests_in_flight >= handle.limits.max_in_flight:
                conn.reply(
                    message[1],
                    False,
                    ["ServiceError", f"more than {handle.limits.max_in_flight} requests in flight"],
                )
                return
            handle.requests_in_flight += 1
            self._task_group.start_soon(self._serve_request, conn, handle, message)

    async def _serve_request(
        self, conn: WorkerConnection, handle: ModuleHandle, message: list[Any]
    ) -> None:
        _, request_id, kind, target, method, kwargs = message
        try:
            with anyio.fail_after(handle.limits.call_timeout):
                result = await self._request_result(
                    handle, kind, target[:200], method[:200], kwargs
                )
            conn.reply(request_id, True, result)
        except PermissionDenied as exc:
            conn.reply(request_id, False, ["PermissionDenied", str(exc)])
        except ServiceError as exc:
            conn.reply(request_id, False, ["ServiceError", str(exc)])
        except TimeoutError:
            conn.reply(request_id, False, ["ServiceError", f"{kind} {target!r} timed out"])
        except SandboxError as exc:  # from a callee module: its first line, not its traceback
            lines = str(exc.args[0] if exc.args else type(exc).__name__).splitlines()
            conn.reply(request_id, False, ["ServiceError", (lines or [""])[0][:1000]])
        except Exception as exc:
            # The module chooses the arguments, and so how often a service raises: a traceback
            # for each failure would let it write the host's log as fast as it can send
            # requests. The 1st, 10th, 100th and every 1000th are logged, with the count.
            failed = self._failed_requests.get(handle.name, 0) + 1
            self._failed_requests[handle.name] = failed
            if failed in (1, 10, 100) or failed % 1000 == 0:
                _log.error(
                    "%s %r called by module %s failed (%d failed requests from it so far)",
                    "host service" if kind == "service" else "module",
                    target[:200],
                    handle.name,
                    failed,
                    exc_info=exc,
                )
            conn.reply(
                request_id,
                False,
                ["ServiceError", f"host service {target[:200]!r} failed ({type(exc).__name__})"],
            )
        finally:
            handle.requests_in_flight -= 1

    async def _request_result(
        self, handle: ModuleHandle, kind: str, target: str, method: str, kwargs: dict[str, Any]
    ) -> Any:
        held = handle.held()
        if not all(type(key) is str for key in kwargs):
            raise ServiceError(
                f"{kind} {target!r}: keyword argument names must be strings", module=handle.name
            )
        if kind == "service":
            service = self.bus.check_service(handle.name, target, held)
            return await run_service(service, handle.name, kwargs, handle.service_limiter)
        if kind == "module":
            callee = self._modules.get(target)
            if callee is None:
                raise ServiceError(f"no module named {target!r} is loaded", module=handle.name)
            missing = sorted(callee.call_requires - held)
            if missing:
                audit_log.warning(
                    "module=%s call=%r.%r decision=denied missing=%s",
                    handle.name,
                    target,
                    method,
                    ",".join(missing),
                )
                raise PermissionDenied(
                    f"module {handle.name!r} may not call module {target!r}: it requires "
                    f"{', '.join(missing)}",
                    module=handle.name,
                    missing=missing,
                )
            audit_log.info("module=%s call=%r.%r decision=allowed", handle.name, target, method)
            # The caller's own deadline is the request's; a `timeout` argument is not a way to
            # make the callee's deadline (and its cancel-and-kill) whatever the caller likes.
            kwargs.pop("timeout", None)
            return await callee.call(method, **kwargs)
        raise ServiceError(f"unknown request kind {kind!r}", module=handle.name)
