"""Worker side: apply the sandbox policy to this process, in order, before module code.

PLACEHOLDER owned by the confinement work (issue 3): one module per mechanism (rlimits,
namespaces, landlock, seccomp) behind this one `apply()`.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ConfinementError", "apply"]


class ConfinementError(Exception):
    """A layer the policy requires could not be applied (strict mode)."""

    def __init__(self, layer: str, detail: str) -> None:
        super().__init__(f"{layer}: {detail}")
        self.layer = layer
        self.detail = detail


def apply(policy: dict[str, Any]) -> dict[str, Any]:
    """Apply `policy`; return the report {layers: [...], missing: {layer: why}}."""
    os.environ.clear()
    os.environ.update({k: v for k, v in policy.get("env", [])})
    return {"layers": ["env"], "missing": {}}
