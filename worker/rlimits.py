"""Worker side: resource limits (setrlimit), lowered before anything else is confined.

Hard limits are only ever lowered: this machine's root lacks CAP_SYS_RESOURCE, and a worker
must not be able to raise them again anyway (seccomp allows `prlimit64` only to read).
"""

from __future__ import annotations

import resource

__all__ = ["apply_rlimits"]


def apply_rlimits(rules: list[list[object]]) -> list[str]:
    """Set each [name, soft, hard]; never above the current hard limit. Returns notes."""
    notes: list[str] = []
    for name, soft, hard in rules:
        res = getattr(resource, f"RLIMIT_{name}")
        soft, hard = int(str(soft)), int(str(hard))
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY and hard > cur_hard:
            notes.append(f"{name}: hard {hard} clamped to current {cur_hard}")
            hard = cur_hard
        soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))
    return notes
