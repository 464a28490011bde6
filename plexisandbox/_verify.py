"""Host side: check a worker's confinement from /proc, not from the worker's word.

The worker's CONFINED report is hostile input like everything else it sends: a compromised
bootstrap (or a bug) could claim layers it never applied. Before any module code is sent,
the host reads `/proc/<pid>/status` and the namespace links itself. What /proc cannot show
(Landlock has no /proc trace on this kernel) is taken from the report and said so in
docs/security.md.
"""

from __future__ import annotations

import os
from typing import Any

from ._policy import SandboxPolicy
from .errors import ConfinementUnavailable

__all__ = ["read_status", "verify_confinement"]


def read_status(pid: int) -> dict[str, str]:
    """The fields of /proc/<pid>/status."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _ns(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def verify_confinement(
    pid: int, policy: SandboxPolicy, report: dict[str, Any], *, uid: int | None = None
) -> list[str]:
    """Return the layers that are really active after checking /proc/<pid>/status.

    `uid` is the unprivileged uid the host allocated to this worker (root host), if any.

    Raises:
        ConfinementUnavailable: strict mode and a required layer is missing or the worker
            claims a layer that /proc contradicts.
    """
    raw_layers = report.get("layers", [])
    claimed = {str(x) for x in raw_layers} if isinstance(raw_layers, list) else set()
    raw_missing = report.get("missing", {})
    missing: dict[str, str] = (
        {str(k)[:64]: str(v)[:500] for k, v in raw_missing.items()}
        if isinstance(raw_missing, dict)
        else {}
    )
    try:
        status = read_status(pid)
    except OSError as exc:
        raise ConfinementUnavailable(
            module=policy.module, layer="verify", detail=f"cannot read /proc/{pid}/status: {exc}"
        ) from exc

    def contradicts(layer: str, detail: str) -> None:
        claimed.discard(layer)
        missing[layer] = f"host check failed: {detail}"

    required = set(policy.layers)
    if "no_new_privs" in claimed and status.get("NoNewPrivs") != "1":
        contradicts("no_new_privs", f"NoNewPrivs is {status.get('NoNewPrivs')!r}, not 1")
    if "seccomp" in claimed and status.get("Seccomp") != "2":
        contradicts("seccomp", f"Seccomp is {status.get('Seccomp')!r}, not 2 (filter)")
    if "uid" in claimed:
        uids = status.get("Uid", "").split()
        gids = status.get("Gid", "").split()
        groups = status.get("Groups", "").split()
        if uid is None or uids != [str(uid)] * 4 or gids != [str(uid)] * 4:
            contradicts("uid", f"Uid {uids} Gid {gids}, expected {uid} everywhere")
        elif groups:
            contradicts("uid", f"supplementary groups {groups[:8]} kept")
        elif int(status.get("CapEff", "1"), 16) != 0 or int(status.get("CapPrm", "1"), 16) != 0:
            contradicts("uid", f"CapEff {status.get('CapEff')} CapPrm {status.get('CapPrm')}")
    # A namespace link that cannot be read is a contradiction, not a pass (fail closed).
    if "userns" in claimed:
        theirs = _ns(pid, "user")
        if theirs is None or theirs == _ns("self", "user"):
            contradicts("userns", "the worker shares the host's user namespace (or hides it)")
        elif int(status.get("CapEff", "1"), 16) != 0:
            contradicts("userns", f"CapEff {status.get('CapEff')}, not 0")
    if "netns" in claimed:
        theirs = _ns(pid, "net")
        if theirs is None or theirs == _ns("self", "net"):
            contradicts(
                "netns", "the worker shares the host's network namespace (or /proc hides it)"
            )

    active = [layer for layer in policy.layers if layer in claimed]
    for layer in required - set(active):
        missing.setdefault(layer, "not reported active by the worker")
    absent = [layer for layer in policy.layers if layer in missing]
    if policy.strict and absent:
        layer = absent[0]
        raise ConfinementUnavailable(module=policy.module, layer=layer, detail=missing[layer])
    report["missing"] = {k: missing[k] for k in absent}
    return ["env", *active] if "env" in claimed else active
