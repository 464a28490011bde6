"""Host side: check a worker's confinement from /proc, not from the worker's word.

PLACEHOLDER owned by the confinement work (issue 3).
"""

from __future__ import annotations

from typing import Any

from ._policy import SandboxPolicy


def verify_confinement(pid: int, policy: SandboxPolicy, report: dict[str, Any]) -> list[str]:
    """Return the list of active layers after checking /proc/<pid>/status.

    Raises:
        ConfinementUnavailable: strict mode and a required layer is missing.
    """
    layers = report.get("layers", [])
    return [str(x) for x in layers] if isinstance(layers, list) else []
