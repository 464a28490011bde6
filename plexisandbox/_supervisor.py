"""Host side: the `Supervisor` — loads modules into workers and relays everything between them."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from ._handle import ModuleHandle, ModuleStats
from ._limits import Limits, RestartPolicy
from ._policy import HostFacts
from ._protocol import Op
from ._sources import check_name, resolve_source
from ._worker import WorkerConnection
from .errors import SandboxError
from .interfaces import ModulePermissions

__all__ = ["Supervisor"]

_log = logging.getLogger("plexisandbox")


class Supervisor:
    """Runs modules in confined worker processes. Use as `async with Supervisor() as sup:`.

    `grant`, `limits` and `restart` are the defaults for every module; `load()` overrides them
    per module. The default grant is the baseline: nothing beyond it. `strict=True` refuses a
    module whose required confinement layer the kernel cannot give.
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
    ) -> None:
        self.default_grant = grant if grant is not None else ModulePermissions()
        self.default_limits = limits if limits is not None else Limits()
        self.default_restart = restart if restart is not None else RestartPolicy()
        self.strict = strict
        self.data_root = os.fspath(data_root) if data_root is not None else None
        self.log_level = log_level
        self.host_facts = HostFacts.detect()
        self._modules: dict[str, ModuleHandle] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    # -- context -----------------------------------------------------------------------------
    async def __aenter__(self) -> Supervisor:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        with anyio.CancelScope(shield=True):
            await self.aclose()
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Shut every module down (each bounded by a grace period), concurrently."""
        async with anyio.create_task_group() as tg:
            for handle in list(self._modules.values()):
                tg.start_soon(handle.shutdown)
        self._modules.clear()

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
    ) -> ModuleHandle:
        """Start a worker for `source`, check its declaration against the grant, configure it.

        `source` is a `.py` path (optionally `path.py:Class`), `"package.module:Class"`, an
        entry point name in group `plexisandbox.modules`, or a BaseModule subclass. The module
        is LOADED afterwards; call `start()` on the handle.

        Raises:
            PermissionDenied: the module declares permissions the grant does not give.
            ConfigInvalid: `config` does not match the module's schema.
            ConfinementUnavailable: strict mode and a required layer is missing here.
            ModuleError: importing or instantiating the module raised.
            ValueError: the name is invalid or already in use.
        """
        resolved = resolve_source(source)
        module_name = check_name(name or resolved.default_name)
        if module_name in self._modules:
            raise ValueError(
                f"a module named {module_name!r} is already loaded; pass name= to load another "
                "copy, or unload() it first"
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
        self._modules[module_name] = handle
        try:
            await handle._load()
        except BaseException:
            self._modules.pop(module_name, None)
            raise
        return handle

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

    def data_dir_for(self, name: str, declared: ModulePermissions) -> str | None:
        """The private data folder of a module that declared file access, else None."""
        if self.data_root is None:
            return None
        if not (
            declared.file_system_access
            or declared.allows("file_system_access")
            or declared.allows("file_handling")
            or declared.allows("backup_storage")
        ):
            return None
        return os.path.join(self.data_root, name)

    # -- messages from workers ---------------------------------------------------------------
    def _handle_of(self, conn: WorkerConnection) -> ModuleHandle | None:
        handle = self._modules.get(conn.name)
        return handle if handle is not None else None

    def _on_worker_message(self, conn: WorkerConnection, op: Op, message: list[Any]) -> None:
        handle = self._handle_of(conn)
        if op is Op.SUBSCRIBE:
            if handle is not None:
                handle.subscriptions.add(message[1][:200])
        elif op is Op.EMIT:
            pass
        elif op is Op.REQUEST:
            _, request_id, kind, target, _method, _kwargs = message
            error = SandboxError(f"no {kind} named {target[:100]!r} is registered")
            conn.reply(request_id, False, [type(error).__name__, str(error)])
