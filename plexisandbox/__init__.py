"""Host side: plexisandbox's public API — run untrusted chat-server modules in confined workers.

Imports are lazy so that the pure core (`plexisandbox.interfaces`, `plexisandbox.errors`,
`plexisandbox._protocol`) can be imported inside a worker without pulling in anyio or psutil.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Limits",
    "ModuleHandle",
    "ModuleStats",
    "RestartPolicy",
    "RestartStrategy",
    "Supervisor",
    "__version__",
]

__version__ = "0.1.0"

_LAZY = {
    "Supervisor": "._supervisor",
    "ModuleHandle": "._handle",
    "ModuleStats": "._handle",
    "Limits": "._limits",
    "RestartPolicy": "._limits",
    "RestartStrategy": "._limits",
}

if TYPE_CHECKING:
    from ._handle import ModuleHandle, ModuleStats
    from ._limits import Limits, RestartPolicy, RestartStrategy
    from ._supervisor import Supervisor


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'plexisandbox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target, __name__), name)
    globals()[name] = value
    return value
