"""Pure core (both sides): the seed's module contracts, importable inside a worker.

This is the user's contract from `module-interfaces-guide.md`, complete: `BaseModule`, the
lifecycle, configuration and API interfaces, `ModuleCapability`, `ModulePermissions`,
`ModuleState`. Modules written against the guide's import path
`plexichat.infrastructure.modules.interfaces` get this very module (the worker aliases it).

It imports only the standard library: the worker imports it before any module code, and the
host imports it without pulling in the supervisor. Inside a worker, the runtime installs a
bridge (`BaseModule._runtime`) that carries events and host-service calls to the supervisor;
outside one (a module exercised directly in a unit test) events are dispatched locally.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import inspect
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "BaseModule",
    "HostServices",
    "IModuleAPI",
    "IModuleConfiguration",
    "IModuleLifecycle",
    "ModuleCapability",
    "ModuleConfiguration",
    "ModuleMetrics",
    "ModulePermissions",
    "ModuleState",
    "RuntimeBridge",
]


class ModuleCapability(enum.StrEnum):
    """What a module can do; declared in `ModulePermissions.capabilities`."""

    # Core capabilities
    MESSAGING = "messaging"
    USER_MANAGEMENT = "user_management"
    FILE_HANDLING = "file_handling"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    # Advanced capabilities
    AI_PROCESSING = "ai_processing"
    BACKUP_STORAGE = "backup_storage"
    CLUSTERING = "clustering"
    SECURITY_SCANNING = "security_scanning"
    ENCRYPTION = "encryption"
    # UI capabilities
    WEB_INTERFACE = "web_interface"
    API_ENDPOINTS = "api_endpoints"
    ADMIN_PANEL = "admin_panel"
    # Integration capabilities
    EXTERNAL_API = "external_api"
    DATABASE_ACCESS = "database_access"
    NETWORK_ACCESS = "network_access"
    FILE_SYSTEM_ACCESS = "file_system_access"

    @classmethod
    def parse(cls, text: str) -> ModuleCapability:
        """Accept `MESSAGING`, `messaging` or `ModuleCapability.MESSAGING`.

        Raises:
            ValueError: the name is not a capability; the message lists the valid ones.
        """
        key = text.strip().rsplit(".", 1)[-1]
        for member in cls:
            if key.upper() == member.name or key.lower() == member.value:
                return member
        valid = ", ".join(m.name for m in cls)
        raise ValueError(f"unknown capability {text!r}; valid capabilities: {valid}")


class ModuleState(enum.StrEnum):
    """The nine states a module moves through (see `plexisandbox._states` for transitions)."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    INITIALIZING = "initializing"
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    UNLOADING = "unloading"
    FAILED = "failed"


PERMISSION_FLAGS: tuple[str, ...] = (
    "network_access",
    "file_system_access",
    "database_access",
    "admin_access",
    "user_data_access",
    "system_config_access",
    "external_api_access",
)


@dataclass
class ModulePermissions:
    """What a module declares it needs, or what an operator grants it.

    Permissions compare as sets: the seven flags plus the capabilities. `missing_from(grant)`
    names exactly what a declaration asks for beyond a grant.
    """

    capabilities: list[ModuleCapability] = field(default_factory=list)
    network_access: bool = False
    file_system_access: bool = False
    database_access: bool = False
    admin_access: bool = False
    user_data_access: bool = False
    system_config_access: bool = False
    external_api_access: bool = False

    def __post_init__(self) -> None:
        # Accept capability names as strings too (config files, the CLI, the wire).
        self.capabilities = [
            c if isinstance(c, ModuleCapability) else ModuleCapability.parse(str(c))
            for c in self.capabilities
        ]

    def names(self) -> frozenset[str]:
        """Every flag that is set and every capability, as stable lowercase names."""
        flags = {f for f in PERMISSION_FLAGS if getattr(self, f)}
        return frozenset(flags | {c.value for c in self.capabilities})

    def missing_from(self, grant: ModulePermissions) -> list[str]:
        """What this declaration asks for that `grant` does not give, sorted."""
        return sorted(self.names() - grant.names())

    def allows(self, name: str) -> bool:
        """True when the flag or capability `name` is set."""
        return name in self.names()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the wire and JSON: capabilities as their values."""
        out: dict[str, Any] = {f: bool(getattr(self, f)) for f in PERMISSION_FLAGS}
        out["capabilities"] = sorted(c.value for c in self.capabilities)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModulePermissions:
        """Inverse of `to_dict`; unknown keys are refused.

        Raises:
            ValueError: an unknown key or capability.
        """
        unknown = set(data) - set(PERMISSION_FLAGS) - {"capabilities"}
        if unknown:
            raise ValueError(f"unknown permission fields: {sorted(unknown)}")
        flags = {f: bool(data.get(f, False)) for f in PERMISSION_FLAGS}
        caps = [ModuleCapability.parse(str(c)) for c in data.get("capabilities", ())]
        return cls(capabilities=caps, **flags)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ModulePermissions:
        """Build from flag names and capability names, e.g. CLI `--grant` values.

        Raises:
            ValueError: a name that is neither a flag nor a capability.
        """
        perms = cls()
        for raw in names:
            name = raw.strip()
            if name.lower() in PERMISSION_FLAGS:
                setattr(perms, name.lower(), True)
            else:
                cap = ModuleCapability.parse(name)
                if cap not in perms.capabilities:
                    perms.capabilities.append(cap)
        return perms

    def union(self, other: ModulePermissions) -> ModulePermissions:
        """Everything either side has."""
        return ModulePermissions.from_names(self.names() | other.names())

    def intersection(self, other: ModulePermissions) -> ModulePermissions:
        """Only what both sides have."""
        return ModulePermissions.from_names(self.names() & other.names())


@dataclass
class ModuleConfiguration:
    """A module's configuration; the guide uses `configuration.custom_config`."""

    custom_config: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    auto_start: bool = True
    priority: int = 0


class ModuleMetrics:
    """Counters a module keeps about itself (`self.metrics.record_error()`)."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.error_count = 0
        self.call_count = 0
        self.event_count = 0
        self.last_error_at: float | None = None

    def record_error(self) -> None:
        """Count one error."""
        self.error_count += 1
        self.last_error_at = time.time()

    def record_call(self) -> None:
        """Count one API call."""
        self.call_count += 1

    def record_event(self) -> None:
        """Count one handled event."""
        self.event_count += 1

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `health_check()`."""
        return {
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "errors": self.error_count,
            "calls": self.call_count,
            "events": self.event_count,
            "last_error_at": self.last_error_at,
        }


class IModuleLifecycle(ABC):
    """The complete lifecycle of a module."""

    @abstractmethod
    async def initialize(self) -> bool:
        """Initialize the module."""

    @abstractmethod
    async def start(self) -> bool:
        """Start the module."""

    @abstractmethod
    async def stop(self) -> bool:
        """Stop the module."""

    @abstractmethod
    async def pause(self) -> bool:
        """Pause the module."""

    @abstractmethod
    async def resume(self) -> bool:
        """Resume the module."""

    @abstractmethod
    async def shutdown(self) -> bool:
        """Shutdown the module."""

    @abstractmethod
    async def health_check(self) -> dict[str, Any]:
        """Perform health check."""


class IModuleConfiguration(ABC):
    """Module configuration handling."""

    @abstractmethod
    def get_config_schema(self) -> dict[str, Any]:
        """Return JSON schema for configuration validation."""

    @abstractmethod
    def validate_config(self, config: dict[str, Any]) -> bool:
        """Validate configuration."""

    @abstractmethod
    def apply_config(self, config: dict[str, Any]) -> bool:
        """Apply configuration."""

    @abstractmethod
    def get_current_config(self) -> dict[str, Any]:
        """Get current configuration."""


class IModuleAPI(ABC):
    """Inter-module communication."""

    @abstractmethod
    def get_api_version(self) -> str:
        """Get API version."""

    @abstractmethod
    def get_available_methods(self) -> list[str]:
        """List available API methods."""

    @abstractmethod
    async def call_method(self, method: str, **kwargs: Any) -> Any:
        """Call module method."""

    @abstractmethod
    def register_event_handler(self, event: str, handler: Callable[..., Any]) -> bool:
        """Register event handler."""

    @abstractmethod
    def emit_event(self, event: str, data: Any) -> bool:
        """Emit event."""


class RuntimeBridge(Protocol):
    """What the worker runtime offers a module: the supervisor's end of events and services."""

    def subscribe(self, module: BaseModule, event: str) -> None: ...

    def emit(self, module: BaseModule, event: str, data: Any) -> None: ...

    async def call_service(
        self, module: BaseModule, service: str, kwargs: dict[str, Any]
    ) -> Any: ...

    async def call_module(
        self, module: BaseModule, target: str, method: str, kwargs: dict[str, Any]
    ) -> Any: ...


class HostServices:
    """`self.host`: call services the embedding application registered with the supervisor.

    `await self.host.call("messages.send", channel="general", text="hi")`; the supervisor
    checks the module's declared and granted permissions on every call.
    """

    def __init__(self, module: BaseModule) -> None:
        self._module = module

    async def call(self, service: str, /, **kwargs: Any) -> Any:
        """Call a host service by name.

        Raises:
            PermissionDenied: the module lacks the permission the service requires.
            RuntimeError: the module is not running under a supervisor.
        """
        bridge = BaseModule._runtime
        if bridge is None:
            raise RuntimeError(
                f"module {self._module.name!r} called host service {service!r} outside a "
                "supervisor; host services exist only for a module loaded with Supervisor.load()"
            )
        return await bridge.call_service(self._module, service, kwargs)

    async def call_module(self, target: str, method: str, /, **kwargs: Any) -> Any:
        """Call another module's API method through the supervisor (permission-checked)."""
        bridge = BaseModule._runtime
        if bridge is None:
            raise RuntimeError(
                f"module {self._module.name!r} called module {target!r} outside a supervisor"
            )
        return await bridge.call_module(self._module, target, method, kwargs)


# Methods of the contract itself: never part of a module's callable API by default.
_CONTRACT_METHODS: frozenset[str] = frozenset(
    name
    for cls in (IModuleLifecycle, IModuleConfiguration, IModuleAPI)
    for name in vars(cls)
    if not name.startswith("_")
) | frozenset({"get_metadata", "get_required_permissions"})


class BaseModule(IModuleLifecycle, IModuleConfiguration, IModuleAPI):
    """Base class of every module: the three interfaces with sensible defaults.

    REQUIRED overrides: `initialize`, `get_metadata`, `get_required_permissions`.
    """

    # Installed by the worker runtime; None when a module runs outside a supervisor.
    _runtime: ClassVar[RuntimeBridge | None] = None

    def __init__(self, name: str = "BaseModule", version: str = "1.0.0") -> None:
        self.name = name
        self.version = version
        self.logger = logging.getLogger(f"plexisandbox.module.{name}")
        self.metrics = ModuleMetrics()
        self.last_error: BaseException | None = None
        self.configuration = ModuleConfiguration()
        self.state = ModuleState.UNLOADED
        self.host = HostServices(self)
        self._event_handlers: dict[str, list[Callable[..., Any]]] = {}
        self._local_tasks: set[asyncio.Future[Any]] = set()

    @property
    def data_dir(self) -> str | None:
        """The module's private writable folder (declared file access only), else None.

        It is kept across restarts; the supervisor caps its size (`Limits.data_mb`).
        """
        import os

        override: str | None = self.__dict__.get("_data_dir_override")
        return override if override is not None else os.environ.get("PLEXISANDBOX_DATA_DIR")

    @data_dir.setter
    def data_dir(self, value: str | None) -> None:
        # A module may keep its own attribute of this name; don't make assignment fail.
        self.__dict__["_data_dir_override"] = value

    # -- REQUIRED -------------------------------------------------------------------------
    @abstractmethod
    async def initialize(self) -> bool:
        """Initialize the module - REQUIRED."""

    @abstractmethod
    def get_metadata(self) -> dict[str, Any]:
        """Get module metadata - REQUIRED."""

    @abstractmethod
    def get_required_permissions(self) -> ModulePermissions:
        """Define required permissions - REQUIRED."""

    # -- lifecycle defaults ---------------------------------------------------------------
    async def start(self) -> bool:
        """Start the module."""
        self.state = ModuleState.ACTIVE
        return True

    async def stop(self) -> bool:
        """Stop the module."""
        self.state = ModuleState.LOADED
        return True

    async def pause(self) -> bool:
        """Pause the module."""
        self.state = ModuleState.PAUSED
        return True

    async def resume(self) -> bool:
        """Resume the module."""
        self.state = ModuleState.ACTIVE
        return True

    async def shutdown(self) -> bool:
        """Shutdown the module."""
        self.state = ModuleState.UNLOADED
        return True

    async def health_check(self) -> dict[str, Any]:
        """Perform health check: status, identity, state and the module's own metrics."""
        healthy = self.state not in (ModuleState.ERROR, ModuleState.FAILED)
        return {
            "status": "healthy" if healthy else "unhealthy",
            "name": self.name,
            "version": self.version,
            "state": self.state.value,
            "last_error": repr(self.last_error) if self.last_error else None,
            "metrics": self.metrics.to_dict(),
        }

    # -- configuration defaults -----------------------------------------------------------
    def get_config_schema(self) -> dict[str, Any]:
        """Return JSON schema for configuration validation (default: any object)."""
        return {"type": "object"}

    def validate_config(self, config: dict[str, Any]) -> bool:
        """Validate configuration against `get_config_schema()`."""
        if not isinstance(config, dict):
            return False
        schema = self.get_config_schema()
        if schema in ({}, {"type": "object"}):
            return True  # any object: no need to import jsonschema (tens of ms at start-up)
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - jsonschema is a runtime dependency
            required = self.get_config_schema().get("required", [])
            return all(key in config for key in required)
        validator_cls = jsonschema.validators.validator_for(self.get_config_schema())
        return bool(validator_cls(self.get_config_schema()).is_valid(config))

    def apply_config(self, config: dict[str, Any]) -> bool:
        """Apply configuration after validating it."""
        if not self.validate_config(config):
            return False
        self.configuration.custom_config.update(config)
        return True

    def get_current_config(self) -> dict[str, Any]:
        """Get current configuration."""
        return dict(self.configuration.custom_config)

    # -- API defaults ---------------------------------------------------------------------
    def get_api_version(self) -> str:
        """Get API version."""
        return "1.0.0"

    def get_available_methods(self) -> list[str]:
        """Public methods the module's own classes define (never the contract's methods)."""
        return list(_api_of(type(self)))

    async def call_method(self, method: str, **kwargs: Any) -> Any:
        """Call one of `get_available_methods()`; sync methods run in a thread.

        Raises:
            AttributeError: the method is not part of the module's API.
        """
        return await self._invoke(method, kwargs)

    async def _invoke(self, method: str, kwargs: dict[str, Any]) -> Any:
        # Takes the arguments as a dict so that an argument called `method` cannot collide
        # with call_method's own parameter; the worker calls this unless a module overrides
        # call_method.
        # The default API is a property of the class: look it up without building a list.
        if type(self).get_available_methods is BaseModule.get_available_methods:
            allowed = method in _api_of(type(self))
        else:
            allowed = method in self.get_available_methods()
        if not allowed:
            available = ", ".join(self.get_available_methods()) or "none"
            raise AttributeError(
                f"module {self.name!r} has no API method {method!r}; available: {available}"
            )
        target = getattr(self, method)
        self.metrics.record_call()
        if _is_async(target):
            return await target(**kwargs)
        # A sync method must not block the worker's event loop (pings, other calls).
        result = await _in_thread(target, kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    def register_event_handler(self, event: str, handler: Callable[..., Any]) -> bool:
        """Register event handler; under a supervisor this subscribes the module to `event`."""
        if not callable(handler) or not isinstance(event, str) or not event:
            return False
        self._event_handlers.setdefault(event, []).append(handler)
        if BaseModule._runtime is not None:
            BaseModule._runtime.subscribe(self, event)
        return True

    def emit_event(self, event: str, data: Any) -> bool:
        """Emit event to every subscriber (other modules and the host)."""
        if not isinstance(event, str) or not event:
            return False
        if BaseModule._runtime is not None:
            BaseModule._runtime.emit(self, event, data)
            return True
        # Outside a supervisor: deliver to this module's own handlers, in order.
        for handler in self.handlers_for(event):
            result = handler(data)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._local_tasks.add(task)
                task.add_done_callback(self._local_tasks.discard)
        return True

    def handlers_for(self, event: str) -> list[Callable[..., Any]]:
        """Handlers registered for `event`, including wildcard patterns like `message.*`."""
        from fnmatch import fnmatchcase

        found: list[Callable[..., Any]] = []
        for pattern, handlers in self._event_handlers.items():
            if pattern == event or fnmatchcase(event, pattern):
                found.extend(handlers)
        return found


_ASYNC: dict[Any, bool] = {}
_sync_pool: ThreadPoolExecutor | None = None


async def _in_thread(target: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """`asyncio.to_thread(target, **kwargs)`, in a pool that abandoned calls cannot use up.

    A thread cannot be interrupted: a sync method cancelled (its deadline passed) keeps its
    thread until it returns, maybe never. With asyncio's default pool (cpu_count + 4
    threads) a few such calls made every later sync call of the module wait for ever while
    the module looked healthy. A cancelled call leaves its pool to finish what it holds and
    the next call gets a fresh one; stuck threads add up in the worker's thread count,
    which `Limits.threads` bounds (the watchdog kills the worker, saying why).
    """
    global _sync_pool
    pool = _sync_pool
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor  # as asyncio does, when first used

        pool = _sync_pool = ThreadPoolExecutor(thread_name_prefix="asyncio")
    call = functools.partial(contextvars.copy_context().run, target, **kwargs)
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, call)
    except asyncio.CancelledError:
        if _sync_pool is pool:
            _sync_pool = None
            pool.shutdown(wait=False)  # its threads end once their calls return
        raise


def _is_async(target: Any) -> bool:
    """inspect.iscoroutinefunction(), remembered per function: it costs a microsecond or
    two, a good part of a small call. Keyed by the function, not the bound method (a new
    object on every attribute access); anything unhashable is simply not remembered."""
    func = getattr(target, "__func__", target)
    try:
        return _ASYNC[func]
    except KeyError:
        result = _ASYNC[func] = inspect.iscoroutinefunction(target)
    except TypeError:
        result = inspect.iscoroutinefunction(target)
    return result


@functools.cache
def _api_of(cls: type) -> tuple[str, ...]:
    """The public methods `cls` and its own bases define, minus the contract's (cached)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in (BaseModule, IModuleLifecycle, IModuleConfiguration, IModuleAPI, ABC, object):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr in _CONTRACT_METHODS:
                continue
            if inspect.isfunction(value) or isinstance(value, staticmethod | classmethod):
                names.add(attr)
    return tuple(sorted(names))
