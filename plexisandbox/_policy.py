"""Pure core (both sides): the sandbox policy and its derivation from declared permissions.

PLACEHOLDER owned by the confinement work (issue 3): `derive_policy` and `SandboxPolicy` grow
the rlimit, namespace, Landlock and seccomp sections there. The core runtime relies only on
the names below: `SandboxPolicy.env`, `.data_dir`, `.strict`, `.to_wire()`, `derive_policy()`
and `HostFacts.detect()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._limits import Limits
from .interfaces import ModulePermissions

__all__ = ["HostFacts", "SandboxPolicy", "derive_policy"]

_BASE_ENV: tuple[tuple[str, str], ...] = (
    ("PATH", "/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("HOME", "/nonexistent"),
    ("MALLOC_ARENA_MAX", "2"),
)


@dataclass(frozen=True)
class HostFacts:
    """What the host offers: paths the runtime needs read access to, kernel features."""

    runtime_paths: tuple[str, ...] = ()

    @classmethod
    def detect(cls) -> HostFacts:
        return cls()


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything the worker applies to itself before importing the module."""

    module: str
    strict: bool = True
    env: tuple[tuple[str, str], ...] = _BASE_ENV
    data_dir: str | None = None
    module_paths: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "strict": self.strict,
            "env": [list(kv) for kv in self.env],
            "data_dir": self.data_dir,
            "module_paths": list(self.module_paths),
        }


def derive_policy(
    declared: ModulePermissions,
    limits: Limits,
    host: HostFacts,
    *,
    module: str,
    module_paths: tuple[str, ...] = (),
    data_dir: str | None = None,
    strict: bool = True,
) -> SandboxPolicy:
    """Pure and deterministic: the same inputs give the same policy."""
    return SandboxPolicy(module=module, strict=strict, module_paths=module_paths, data_dir=data_dir)
