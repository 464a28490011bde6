# ruff: noqa: E501, W291, W293
"""The seed's contracts, without processes: enums, permissions, BaseModule defaults, and
every snippet of the guide run as written (only imports, and a class around the method-only
snippets, added)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from plexisandbox.interfaces import (
    BaseModule,
    IModuleAPI,
    IModuleConfiguration,
    IModuleLifecycle,
    ModuleCapability,
    ModuleConfiguration,
    ModulePermissions,
    ModuleState,
)

# Verbatim from the guide (module-interfaces-guide.md), in its order; do not edit.
GUIDE: dict[str, str] = {
    "base_module": '''\
from plexichat.infrastructure.modules.interfaces import BaseModule, ModulePermissions, ModuleCapability

class MyModule(BaseModule):
    def __init__(self, name: str = "MyModule", version: str = "1.0.0"):
        super().__init__(name, version)
    
    async def initialize(self) -> bool:
        """Initialize the module - REQUIRED"""
        # Your initialization logic here
        return True
    
    def get_metadata(self) -> Dict[str, Any]:
        """Get module metadata - REQUIRED"""
        return {
            "name": self.name,
            "version": self.version,
            "description": "My custom module",
            "author": "Your Name"
        }
    
    def get_required_permissions(self) -> ModulePermissions:
        """Define required permissions - REQUIRED"""
        return ModulePermissions(
            capabilities=[ModuleCapability.MESSAGING],
            network_access=False,
            database_access=True
        )
''',
    "lifecycle": '''\
async def initialize(self) -> bool:
    """Initialize the module"""
    
async def start(self) -> bool:
    """Start the module"""
    
async def stop(self) -> bool:
    """Stop the module"""
    
async def pause(self) -> bool:
    """Pause the module"""
    
async def resume(self) -> bool:
    """Resume the module"""
    
async def shutdown(self) -> bool:
    """Shutdown the module"""
    
async def health_check(self) -> Dict[str, Any]:
    """Perform health check"""
''',
    "configuration": '''\
def get_config_schema(self) -> Dict[str, Any]:
    """Return JSON schema for configuration validation"""
    return {
        "type": "object",
        "properties": {
            "api_key": {"type": "string", "minLength": 1},
            "timeout": {"type": "integer", "minimum": 1, "default": 30}
        },
        "required": ["api_key"]
    }

def validate_config(self, config: Dict[str, Any]) -> bool:
    """Validate configuration"""
    
def apply_config(self, config: Dict[str, Any]) -> bool:
    """Apply configuration"""
    
def get_current_config(self) -> Dict[str, Any]:
    """Get current configuration"""
''',
    "api": '''\
def get_api_version(self) -> str:
    """Get API version"""
    
def get_available_methods(self) -> List[str]:
    """List available API methods"""
    
async def call_method(self, method: str, **kwargs) -> Any:
    """Call module method"""
    
def register_event_handler(self, event: str, handler: Callable) -> bool:
    """Register event handler"""
    
def emit_event(self, event: str, data: Any) -> bool:
    """Emit event"""
''',
    "capabilities": """\
from plexichat.infrastructure.modules.interfaces import ModuleCapability

# Core capabilities
ModuleCapability.MESSAGING          # Message handling
ModuleCapability.USER_MANAGEMENT     # User operations
ModuleCapability.FILE_HANDLING       # File operations
ModuleCapability.AUTHENTICATION      # Auth operations
ModuleCapability.AUTHORIZATION       # Permission checks

# Advanced capabilities
ModuleCapability.AI_PROCESSING       # AI/ML operations
ModuleCapability.BACKUP_STORAGE      # Backup operations
ModuleCapability.CLUSTERING          # Cluster operations
ModuleCapability.SECURITY_SCANNING   # Security scans
ModuleCapability.ENCRYPTION          # Crypto operations

# UI capabilities
ModuleCapability.WEB_INTERFACE       # Web UI
ModuleCapability.API_ENDPOINTS       # REST API
ModuleCapability.ADMIN_PANEL         # Admin interface

# Integration capabilities
ModuleCapability.EXTERNAL_API        # External APIs
ModuleCapability.DATABASE_ACCESS     # Database access
ModuleCapability.NETWORK_ACCESS      # Network access
ModuleCapability.FILE_SYSTEM_ACCESS  # File system access
""",
    "permissions": """\
def get_required_permissions(self) -> ModulePermissions:
    return ModulePermissions(
        capabilities=[
            ModuleCapability.MESSAGING,
            ModuleCapability.DATABASE_ACCESS
        ],
        network_access=True,           # Internet access
        file_system_access=False,      # File system access
        database_access=True,          # Database access
        admin_access=False,            # Admin privileges
        user_data_access=True,         # User data access
        system_config_access=False,    # System config access
        external_api_access=True       # External API access
    )
""",
    "validation_result": """\
# Validation results include:
{
    "is_valid": True,
    "score": 95.5,  # Compliance score 0-100
    "violations": [],  # Critical errors
    "warnings": [     # Non-critical issues
        {
            "severity": "warning",
            "category": "documentation", 
            "message": "Method lacks documentation"
        }
    ]
}
""",
    "states": """\
from plexichat.infrastructure.modules.interfaces import ModuleState

ModuleState.UNLOADED      # Not loaded
ModuleState.LOADING       # Being loaded
ModuleState.LOADED        # Loaded but not started
ModuleState.INITIALIZING  # Being initialized
ModuleState.ACTIVE        # Running normally
ModuleState.PAUSED        # Temporarily paused
ModuleState.ERROR         # Error state
ModuleState.UNLOADING     # Being unloaded
ModuleState.FAILED        # Failed to load/start
""",
    "error_handling": """\
async def initialize(self) -> bool:
    try:
        # Initialization logic
        await self._setup_resources()
        return True
    except Exception as e:
        self.last_error = e
        self.metrics.record_error()
        self.logger.error(f"Initialization failed: {e}")
        return False
""",
    "resource_management": """\
async def shutdown(self) -> bool:
    try:
        # Clean up resources
        await self._cleanup_connections()
        await self._save_state()
        return True
    except Exception as e:
        self.logger.error(f"Shutdown error: {e}")
        return False
""",
    "event_handling": '''\
def __init__(self, name: str = "MyModule"):
    super().__init__(name)
    
    # Register for events
    self.register_event_handler("user_login", self._on_user_login)

async def _on_user_login(self, event_data):
    """Handle user login event"""
    user_id = event_data.get("user_id")
    self.logger.info(f"User logged in: {user_id}")
''',
    "configuration_management": """\
def apply_config(self, config: Dict[str, Any]) -> bool:
    try:
        if not self.validate_config(config):
            return False
        
        # Apply configuration
        self.api_key = config.get("api_key")
        self.timeout = config.get("timeout", 30)
        
        # Update module configuration
        self.configuration.custom_config.update(config)
        return True
    except Exception as e:
        self.logger.error(f"Config application failed: {e}")
        return False
""",
    "example_module": '''\
from plexichat.infrastructure.modules.interfaces import (
    BaseModule, ModulePermissions, ModuleCapability
)

class ExampleModule(BaseModule):
    def __init__(self, name: str = "ExampleModule", version: str = "1.0.0"):
        super().__init__(name, version)
        self.api_client = None
    
    async def initialize(self) -> bool:
        """Initialize the module"""
        try:
            self.logger.info("Initializing Example Module")
            
            # Setup API client
            api_key = self.configuration.custom_config.get("api_key")
            if not api_key:
                self.logger.error("API key not configured")
                return False
            
            self.api_client = APIClient(api_key)
            await self.api_client.connect()
            
            self.logger.info("Example Module initialized successfully")
            return True
        except Exception as e:
            self.last_error = e
            self.logger.error(f"Initialization failed: {e}")
            return False
    
    async def shutdown(self) -> bool:
        """Shutdown the module"""
        try:
            if self.api_client:
                await self.api_client.disconnect()
            return True
        except Exception as e:
            self.logger.error(f"Shutdown error: {e}")
            return False
    
    def get_metadata(self) -> Dict[str, Any]:
        """Get module metadata"""
        return {
            "name": self.name,
            "version": self.version,
            "description": "Example module demonstrating best practices",
            "author": "PlexiChat Team",
            "capabilities": ["external_api", "data_processing"]
        }
    
    def get_required_permissions(self) -> ModulePermissions:
        """Get required permissions"""
        return ModulePermissions(
            capabilities=[ModuleCapability.EXTERNAL_API],
            network_access=True,
            external_api_access=True
        )
    
    def get_config_schema(self) -> Dict[str, Any]:
        """Get configuration schema"""
        return {
            "type": "object",
            "properties": {
                "api_key": {
                    "type": "string",
                    "minLength": 1,
                    "description": "API key for external service"
                },
                "timeout": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 300,
                    "default": 30,
                    "description": "Request timeout in seconds"
                }
            },
            "required": ["api_key"]
        }
    
    async def health_check(self) -> Dict[str, Any]:
        """Perform health check"""
        health = await super().health_check()
        
        # Add module-specific health info
        if self.api_client:
            health["api_connected"] = await self.api_client.is_connected()
        
        return health
''',
}

IMPORTS_ADDED = "from typing import Any, Callable, Dict, List\n"


@pytest.fixture
def seed_path() -> Iterator[None]:
    """`plexichat.infrastructure.modules.interfaces`, as the worker aliases it."""
    from plexisandbox_worker.loader import SEED_PATH, alias_seed_path

    before = set(sys.modules)
    alias_seed_path()
    assert SEED_PATH in sys.modules
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            if name == "plexichat" or name.startswith("plexichat."):
                del sys.modules[name]


def run_snippet(name: str, *, in_class: bool = False, **extra: Any) -> dict[str, Any]:
    """Execute one snippet; method-only snippets run in a class body (as they are written to
    be read), so that zero-argument super() works."""
    code = GUIDE[name]
    namespace: dict[str, Any] = {
        "BaseModule": BaseModule,
        "ModulePermissions": ModulePermissions,
        "ModuleCapability": ModuleCapability,
        "ModuleState": ModuleState,
        **extra,
    }
    if in_class:
        code = "class Snippet(Base):\n" + textwrap.indent(code, "    ")
    exec(compile(IMPORTS_ADDED + code, f"<guide:{name}>", "exec"), namespace)
    return namespace


class Minimal(BaseModule):
    """The least a module must write: the three REQUIRED methods."""

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"name": self.name}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()


# -- enums --------------------------------------------------------------------------------


def test_module_capability_has_the_guides_17_members() -> None:
    expected = [
        "MESSAGING", "USER_MANAGEMENT", "FILE_HANDLING", "AUTHENTICATION", "AUTHORIZATION",
        "AI_PROCESSING", "BACKUP_STORAGE", "CLUSTERING", "SECURITY_SCANNING", "ENCRYPTION",
        "WEB_INTERFACE", "API_ENDPOINTS", "ADMIN_PANEL",
        "EXTERNAL_API", "DATABASE_ACCESS", "NETWORK_ACCESS", "FILE_SYSTEM_ACCESS",
    ]  # fmt: skip
    assert [m.name for m in ModuleCapability] == expected
    assert len(ModuleCapability) == 17
    assert all(m.value == m.name.lower() for m in ModuleCapability)


def test_module_state_has_the_guides_9_members_in_order() -> None:
    expected = [
        "UNLOADED", "LOADING", "LOADED", "INITIALIZING", "ACTIVE",
        "PAUSED", "ERROR", "UNLOADING", "FAILED",
    ]  # fmt: skip
    assert [m.name for m in ModuleState] == expected
    assert len(ModuleState) == 9


@pytest.mark.parametrize(
    "text", ["MESSAGING", "messaging", "ModuleCapability.MESSAGING", " Messaging "]
)
def test_capability_parse_accepts_every_spelling(text: str) -> None:
    assert ModuleCapability.parse(text) is ModuleCapability.MESSAGING


def test_capability_parse_lists_the_valid_names() -> None:
    with pytest.raises(
        ValueError, match="unknown capability 'telepathy'; valid capabilities: MESSAGING"
    ):
        ModuleCapability.parse("telepathy")


# -- ModulePermissions --------------------------------------------------------------------


def test_permissions_default_to_nothing() -> None:
    perms = ModulePermissions()
    assert perms.names() == frozenset()
    assert perms.capabilities == []
    assert not perms.network_access


def test_permissions_have_the_guides_seven_flags() -> None:
    flags = {f for f in ModulePermissions.__dataclass_fields__ if f != "capabilities"}
    assert flags == {
        "network_access", "file_system_access", "database_access", "admin_access",
        "user_data_access", "system_config_access", "external_api_access",
    }  # fmt: skip


def test_permissions_names_are_flags_plus_capability_values() -> None:
    perms = ModulePermissions(
        capabilities=[ModuleCapability.MESSAGING, ModuleCapability.DATABASE_ACCESS],
        network_access=True,
        database_access=True,
    )
    assert perms.names() == {"messaging", "database_access", "network_access"}
    assert perms.allows("messaging")
    assert perms.allows("network_access")
    assert not perms.allows("admin_access")


def test_capabilities_given_as_strings_are_parsed() -> None:
    perms = ModulePermissions(capabilities=["MESSAGING", "external_api"])  # type: ignore[list-item]
    assert perms.capabilities == [ModuleCapability.MESSAGING, ModuleCapability.EXTERNAL_API]
    with pytest.raises(ValueError, match="unknown capability"):
        ModulePermissions(capabilities=["nope"])  # type: ignore[list-item]


def test_missing_from_names_exactly_what_the_grant_lacks() -> None:
    declared = ModulePermissions(
        capabilities=[ModuleCapability.MESSAGING, ModuleCapability.ENCRYPTION],
        network_access=True,
        user_data_access=True,
    )
    grant = ModulePermissions(capabilities=[ModuleCapability.MESSAGING], network_access=True)
    assert declared.missing_from(grant) == ["encryption", "user_data_access"]
    assert declared.missing_from(declared) == []
    assert ModulePermissions().missing_from(ModulePermissions()) == []
    assert grant.missing_from(declared) == []  # a grant may exceed the declaration


def test_union_and_intersection_are_set_operations() -> None:
    a = ModulePermissions(capabilities=[ModuleCapability.MESSAGING], network_access=True)
    b = ModulePermissions(
        capabilities=[ModuleCapability.MESSAGING, ModuleCapability.CLUSTERING],
        admin_access=True,
    )
    assert a.union(b).names() == {"messaging", "clustering", "network_access", "admin_access"}
    assert a.intersection(b).names() == {"messaging"}
    assert a.union(ModulePermissions()).names() == a.names()
    assert a.intersection(ModulePermissions()).names() == frozenset()
    assert a.union(b).names() == b.union(a).names()


def test_duplicate_capabilities_count_once() -> None:
    perms = ModulePermissions(capabilities=[ModuleCapability.MESSAGING] * 3)
    assert perms.names() == {"messaging"}
    assert ModulePermissions.from_names(["messaging", "MESSAGING"]).capabilities == [
        ModuleCapability.MESSAGING
    ]


def test_to_dict_from_dict_round_trip() -> None:
    perms = ModulePermissions(
        capabilities=[ModuleCapability.WEB_INTERFACE, ModuleCapability.AI_PROCESSING],
        file_system_access=True,
        system_config_access=True,
    )
    data = perms.to_dict()
    assert data["capabilities"] == ["ai_processing", "web_interface"]
    assert data["file_system_access"] is True
    assert data["admin_access"] is False
    assert ModulePermissions.from_dict(data).names() == perms.names()


def test_from_dict_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown permission fields: \['root'\]"):
        ModulePermissions.from_dict({"root": True})


def test_from_names_takes_flags_and_capabilities() -> None:
    perms = ModulePermissions.from_names(["network_access", "MESSAGING", "Database_Access"])
    assert perms.network_access
    assert perms.database_access  # the flag wins for a name that is both
    assert perms.names() == {"network_access", "messaging", "database_access"}
    with pytest.raises(ValueError, match="unknown capability"):
        ModulePermissions.from_names(["everything"])


# -- BaseModule ---------------------------------------------------------------------------


def test_base_module_implements_the_three_interfaces() -> None:
    assert issubclass(BaseModule, IModuleLifecycle)
    assert issubclass(BaseModule, IModuleConfiguration)
    assert issubclass(BaseModule, IModuleAPI)


def test_required_methods_are_abstract() -> None:
    assert BaseModule.__abstractmethods__ == {
        "initialize",
        "get_metadata",
        "get_required_permissions",
    }

    class Incomplete(BaseModule):
        async def initialize(self) -> bool:
            return True

    with pytest.raises(TypeError, match="get_metadata"):
        Incomplete()  # type: ignore[abstract]


def test_base_module_attributes() -> None:
    module = Minimal("mini", "0.1.0")
    assert module.name == "mini"
    assert module.version == "0.1.0"
    assert module.logger.name == "plexisandbox.module.mini"
    assert module.last_error is None
    assert isinstance(module.configuration, ModuleConfiguration)
    assert module.configuration.custom_config == {}
    assert module.state is ModuleState.UNLOADED
    module.metrics.record_error()
    assert module.metrics.error_count == 1
    assert module.metrics.last_error_at is not None


def test_default_lifecycle_moves_the_modules_own_state() -> None:
    async def walk() -> list[Any]:
        module = Minimal()
        seen = []
        for step in ("start", "pause", "resume", "stop", "shutdown"):
            assert await getattr(module, step)() is True
            seen.append(module.state)
        return seen

    assert asyncio.run(walk()) == [
        ModuleState.ACTIVE,
        ModuleState.PAUSED,
        ModuleState.ACTIVE,
        ModuleState.LOADED,
        ModuleState.UNLOADED,
    ]


def test_default_health_check() -> None:
    module = Minimal("mini", "2.0")
    report = asyncio.run(module.health_check())
    assert report["status"] == "healthy"
    assert report["name"] == "mini"
    assert report["version"] == "2.0"
    assert report["state"] == "unloaded"
    assert report["last_error"] is None
    assert report["metrics"]["errors"] == 0
    module.state = ModuleState.ERROR
    module.last_error = ValueError("x")
    report = asyncio.run(module.health_check())
    assert report["status"] == "unhealthy"
    assert "ValueError" in report["last_error"]


def test_default_configuration_methods() -> None:
    module = Minimal()
    assert module.get_config_schema() == {"type": "object"}
    assert module.validate_config({"anything": 1})
    assert not module.validate_config(["not", "a", "dict"])  # type: ignore[arg-type]
    assert module.apply_config({"a": 1})
    assert module.get_current_config() == {"a": 1}
    current = module.get_current_config()
    current["b"] = 2
    assert module.get_current_config() == {"a": 1}  # a copy


def test_validate_config_uses_the_schema() -> None:
    class Schema(Minimal):
        def get_config_schema(self) -> dict[str, Any]:
            return {"type": "object", "required": ["k"], "properties": {"k": {"type": "integer"}}}

    module = Schema()
    assert module.validate_config({"k": 1})
    assert not module.validate_config({})
    assert not module.validate_config({"k": "one"})
    assert not module.apply_config({"k": "one"})
    assert module.get_current_config() == {}


def test_available_methods_are_the_modules_own_public_methods() -> None:
    class Api(Minimal):
        async def roll(self) -> int:
            return 4

        def sync_roll(self) -> int:
            return 4

        @staticmethod
        def helper() -> int:
            return 1

        def _private(self) -> None:
            pass

        async def health_check(self) -> dict[str, Any]:  # a contract method, overridden
            return await super().health_check()

    methods = Api().get_available_methods()
    assert methods == ["helper", "roll", "sync_roll"]
    assert Api().get_api_version() == "1.0.0"


def test_call_method_runs_async_and_sync_methods_and_refuses_others() -> None:
    class Api(Minimal):
        async def add(self, a: int, b: int) -> int:
            return a + b

        def mul(self, a: int, b: int) -> int:
            return a * b

    async def go() -> None:
        module = Api()
        assert await module.call_method("add", a=2, b=3) == 5
        assert await module.call_method("mul", a=2, b=3) == 6
        with pytest.raises(AttributeError, match="no API method 'initialize'; available: add, mul"):
            await module.call_method("initialize")
        assert module.metrics.call_count == 2

    asyncio.run(go())


def test_events_are_dispatched_locally_outside_a_supervisor() -> None:
    async def go() -> list[Any]:
        seen: list[Any] = []
        module = Minimal()
        assert module.register_event_handler("chat.*", lambda data: seen.append(("sync", data)))

        async def handler(data: Any) -> None:
            seen.append(("async", data))

        assert module.register_event_handler("chat.message", handler)
        assert not module.register_event_handler("", handler)
        assert not module.register_event_handler("x", "not callable")  # type: ignore[arg-type]
        assert module.emit_event("chat.message", {"text": "hi"})
        assert module.emit_event("other", 1)
        assert not module.emit_event("", 1)
        await asyncio.sleep(0)
        return seen

    assert asyncio.run(go()) == [("sync", {"text": "hi"}), ("async", {"text": "hi"})]


def test_host_services_outside_a_supervisor_explain_themselves() -> None:
    with pytest.raises(RuntimeError, match="outside a supervisor"):
        asyncio.run(Minimal().host.call("messages.send", text="hi"))


# -- the guide, snippet by snippet ----------------------------------------------------------


def test_guide_base_module_snippet(seed_path: None) -> None:
    ns = run_snippet("base_module")
    module = ns["MyModule"]()
    assert module.name == "MyModule"
    assert asyncio.run(module.initialize()) is True
    assert module.get_metadata()["description"] == "My custom module"
    perms = module.get_required_permissions()
    assert perms.capabilities == [ModuleCapability.MESSAGING]
    assert perms.database_access
    assert not perms.network_access


@pytest.mark.parametrize(
    ("snippet", "interface"),
    [
        ("lifecycle", IModuleLifecycle),
        ("configuration", IModuleConfiguration),
        ("api", IModuleAPI),
    ],
)
def test_guide_interface_snippets_match_our_signatures(snippet: str, interface: type) -> None:
    ns = run_snippet(snippet, in_class=True, Base=object)
    written = {name: fn for name, fn in vars(ns["Snippet"]).items() if inspect.isfunction(fn)}
    assert written, snippet
    for name, fn in written.items():
        ours = getattr(BaseModule, name)
        assert name in vars(interface), f"{name} is not part of {interface.__name__}"
        assert list(inspect.signature(fn).parameters) == list(inspect.signature(ours).parameters), (
            name
        )
        assert inspect.iscoroutinefunction(fn) == inspect.iscoroutinefunction(ours), name


def test_guide_config_schema_snippet_is_a_valid_schema() -> None:
    import jsonschema

    ns = run_snippet("configuration", in_class=True, Base=Minimal)
    schema = ns["Snippet"]().get_config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["api_key"]


def test_guide_capabilities_snippet(seed_path: None) -> None:
    run_snippet("capabilities")


def test_guide_permissions_snippet() -> None:
    ns = run_snippet("permissions", in_class=True, Base=Minimal)
    perms = ns["Snippet"]().get_required_permissions()
    assert perms.names() == {
        "messaging",
        "database_access",
        "network_access",
        "user_data_access",
        "external_api_access",
    }


def test_guide_validation_result_snippet() -> None:
    run_snippet("validation_result")


def test_guide_states_snippet(seed_path: None) -> None:
    run_snippet("states")


def test_guide_error_handling_snippet(caplog: pytest.LogCaptureFixture) -> None:
    class Base(Minimal):
        async def _setup_resources(self) -> None:
            raise ConnectionError("database unreachable")

    ns = run_snippet("error_handling", in_class=True, Base=Base)
    module = ns["Snippet"]("careful")
    with caplog.at_level(logging.ERROR, logger="plexisandbox.module.careful"):
        assert asyncio.run(module.initialize()) is False
    assert isinstance(module.last_error, ConnectionError)
    assert module.metrics.error_count == 1
    assert "Initialization failed: database unreachable" in caplog.text


def test_guide_resource_management_snippet(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Base(Minimal):
        async def _cleanup_connections(self) -> None:
            calls.append("cleanup")

        async def _save_state(self) -> None:
            calls.append("save")

    ns = run_snippet("resource_management", in_class=True, Base=Base)
    assert asyncio.run(ns["Snippet"]().shutdown()) is True
    assert calls == ["cleanup", "save"]

    class Failing(Base):
        async def _save_state(self) -> None:
            raise OSError("disk full")

    ns = run_snippet("resource_management", in_class=True, Base=Failing)
    with caplog.at_level(logging.ERROR):
        assert asyncio.run(ns["Snippet"]("failing").shutdown()) is False
    assert "Shutdown error: disk full" in caplog.text


def test_guide_event_handling_snippet(caplog: pytest.LogCaptureFixture) -> None:
    ns = run_snippet("event_handling", in_class=True, Base=Minimal)
    module = ns["Snippet"]()
    assert module.name == "MyModule"
    assert "user_login" in module._event_handlers

    async def go() -> None:
        module.emit_event("user_login", {"user_id": 42})
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="plexisandbox.module.MyModule"):
        asyncio.run(go())
    assert "User logged in: 42" in caplog.text


def test_guide_configuration_management_snippet() -> None:
    class Base(Minimal):
        def get_config_schema(self) -> dict[str, Any]:
            return {"type": "object", "required": ["api_key"]}

    ns = run_snippet("configuration_management", in_class=True, Base=Base)
    module = ns["Snippet"]()
    assert module.apply_config({"api_key": "k"}) is True
    assert module.api_key == "k"
    assert module.timeout == 30
    assert module.get_current_config() == {"api_key": "k"}
    assert module.apply_config({"timeout": 5}) is False


class FakeAPIClient:
    """The guide's example uses an APIClient it never defines: an offline stand-in."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.connected = False

    async def connect(self) -> None:
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False

    async def is_connected(self) -> bool:
        return self.connected


def test_guide_example_module_snippet(seed_path: None, caplog: pytest.LogCaptureFixture) -> None:
    ns = run_snippet("example_module", APIClient=FakeAPIClient)
    example = ns["ExampleModule"]

    async def go() -> None:
        unconfigured = example()
        with caplog.at_level(logging.ERROR):
            assert await unconfigured.initialize() is False
        assert "API key not configured" in caplog.text

        module = example()
        assert module.apply_config({"api_key": "secret"})
        assert await module.initialize() is True
        health = await module.health_check()
        assert health["api_connected"] is True
        assert health["status"] == "healthy"
        assert await module.shutdown() is True
        assert module.api_client.connected is False

        perms = module.get_required_permissions()
        assert perms.names() == {"external_api", "network_access", "external_api_access"}
        assert module.get_metadata()["author"] == "PlexiChat Team"
        assert not module.validate_config({"api_key": "k", "timeout": 0})
        assert module.validate_config({"api_key": "k", "timeout": 300})

    asyncio.run(go())
