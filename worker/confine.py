"""Worker side: apply the sandbox policy to this process, in order, before module code.

The order, each step needing syscalls the next one forbids (nsjail's containProc() reads the
same way):

  0. environment from the policy's allow-list (fds, session and pdeathsig: hygiene.py, earlier)
  1. rlimits — while still root, so nothing has to be raised later
  2. pre-warm DNS/TLS (network declared) — needs files Landlock will close
  3. identity: root host → mount-mask untraversable ancestors, network namespace (or join
     the ones the zygote prepared: `Prepared`), drop to the worker's own uid (which clears
     every capability), re-arm the parent-death signal;
     non-root host → user namespace, network namespace, drop the namespace's capabilities
  4. no_new_privs — landlock_restrict_self() demands it once capabilities are gone
  5. Landlock: read-only runtime + module folder, read-write data folder, TCP, scopes
  6. seccomp last: after it, unshare/mount/setuid/landlock syscalls are gone

The process must be single-threaded throughout: Landlock and seccomp apply to the calling
thread (seccomp's TSYNC aside), and a thread started earlier would keep running unconfined.
worker/main.py starts the control thread and asyncio only after GO.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import landlock, namespaces, rlimits, seccomp

__all__ = ["ConfinementError", "Prepared", "apply"]

_PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Prepared:
    """Namespaces the zygote made for this worker to join (descriptors this process owns;
    `apply()` closes them, used or not, before it returns)."""

    #: The empty network namespace every worker without network shares.
    netns: int | None = None
    #: A mount namespace masked (namespaces.mask_untraversable) for exactly `mnt_paths`.
    mntns: int | None = None
    mnt_paths: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    #: The zygote checked `mnt_paths`: with no `mntns`, none of their ancestors needs a mask.
    mnt_checked: bool = False

    def take(self, kind: str) -> int | None:
        fd = getattr(self, kind)
        setattr(self, kind, None)
        return fd  # type: ignore[no-any-return]

    def close(self) -> None:
        for kind in ("netns", "mntns"):
            fd = self.take(kind)
            if fd is not None:
                os.close(fd)


class ConfinementError(Exception):
    """A layer the policy requires could not be applied (strict mode)."""

    def __init__(self, layer: str, detail: str) -> None:
        super().__init__(f"{layer}: {detail}")
        self.layer = layer
        self.detail = detail


def _prewarm(kinds: list[str]) -> None:
    """Load what name resolution and TLS read lazily, while the files are still reachable."""
    if "dns" in kinds:
        import socket

        try:
            socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        except OSError:
            pass
    if "tls" in kinds:
        import ssl

        ssl.create_default_context()


def _no_new_privs() -> None:
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def apply(policy: dict[str, Any], prepared: Prepared | None = None) -> dict[str, Any]:
    """Apply `policy` (SandboxPolicy.to_wire() plus the host's "uid"); return the report
    {layers: [...], missing: {layer: why}, ...}. `prepared`: namespaces the zygote made for
    this worker to join instead of creating its own (root host only).

    Raises:
        ConfinementError: strict mode and a layer the policy requires could not be applied.
    """
    try:
        return _apply(policy, prepared or Prepared())
    finally:
        if prepared is not None:
            prepared.close()


def _rules(raw: Any) -> list[list[Any]] | bytes:
    """The seccomp rules as sent: packed (bytes, unpacked only if needed) or a list."""
    return raw if isinstance(raw, bytes) else list(raw)


def _apply(policy: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
    if threading.active_count() != 1:
        raise ConfinementError("threads", "confinement must start single-threaded")
    strict = bool(policy.get("strict", True))
    required: set[str] = set(policy.get("layers", []))
    layers: list[str] = []
    missing: dict[str, str] = {}
    notes: dict[str, Any] = {}

    def step(layer: str, action: Callable[[], object]) -> bool:
        if layer not in required:
            return False
        try:
            result = action()
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if strict:
                raise ConfinementError(layer, detail) from exc
            missing[layer] = detail
            return False
        if result is not None:
            notes[layer] = result
        layers.append(layer)
        return True

    def unavailable(layer: str, detail: str) -> None:
        if layer not in required:
            return
        if strict:
            raise ConfinementError(layer, detail)
        missing[layer] = detail

    # 0. Environment: exactly the policy's allow-list (a zygote's child has it already).
    env = {str(k): str(v) for k, v in policy.get("env", [])}
    if os.environ != env:
        os.environ.clear()
        os.environ.update(env)
    layers.append("env")
    parent = os.getppid()

    # 1. rlimits.
    step("rlimits", lambda: rlimits.apply_rlimits(policy.get("rlimits", [])) or None)

    # 2. Pre-warm while the filesystem is open (root still reads anything). Without the
    #    host's prebuilt program the filter is generated here, by libseccomp: load it now.
    _prewarm(list(policy.get("prewarm", [])))
    if "seccomp" in required and not policy.get("seccomp_bpf"):
        try:
            seccomp.preload()
        except (OSError, ImportError):
            pass  # reported by the seccomp step itself

    # 3. Identity and namespaces.
    paths = [*policy.get("read", []), *policy.get("write", [])]
    uid = policy.get("uid")

    def enter_netns() -> str | None:
        fd = prepared.take("netns")
        if fd is None or os.geteuid() != 0:
            if fd is not None:
                os.close(fd)
            namespaces.enter_netns()
            return None
        namespaces.join(fd, namespaces.CLONE_NEWNET)
        return "shared"

    def mask_untraversable() -> list[str]:
        fd = prepared.take("mntns")
        if prepared.mnt_checked and prepared.mnt_paths == paths:
            if fd is None:
                return []
            namespaces.join(fd, namespaces.CLONE_NEWNS)
            return list(prepared.masked)
        if fd is not None:
            os.close(fd)
        return namespaces.mask_untraversable(paths)

    if "uid" in required:
        if uid is None or os.geteuid() != 0:
            unavailable("uid", "the host gave no worker uid, or the worker is not root")
            step("netns", enter_netns)
        else:

            def become_uid() -> object:
                masked = mask_untraversable()
                if "netns" in required:
                    step("netns", enter_netns)
                namespaces.drop_to_uid(int(uid), int(policy.get("gid", uid)))
                namespaces.rearm_pdeathsig(parent)
                return {"uid": int(uid), "masked": masked} if masked else {"uid": int(uid)}

            step("uid", become_uid)
            if "netns" in required and "netns" not in layers and "netns" not in missing:
                unavailable("netns", "not attempted: the uid layer failed first")
    elif "userns" in required:

        def userns() -> None:
            namespaces.enter_userns()
            if "netns" in required:
                step("netns", namespaces.enter_netns)
            namespaces.drop_capabilities()

        step("userns", userns)
    else:
        step("netns", enter_netns)

    # 4. no_new_privs: no gain through exec, and the precondition of restrict_self.
    step("no_new_privs", _no_new_privs)

    # 5. Landlock.
    if "landlock" in required:
        abi = landlock.abi_version()
        notes["landlock_abi"] = abi
        if abi < 4:
            unavailable("landlock_net", f"Landlock ABI {abi} < 4 (TCP rules need kernel 6.7)")
        if abi < 6:
            unavailable(
                "landlock_scope", f"Landlock ABI {abi} < 6 (signal/abstract-unix scoping, 6.12)"
            )
        ok = step(
            "landlock",
            lambda: landlock.restrict(
                list(policy.get("read", [])),
                list(policy.get("write", [])),
                tcp=str(policy.get("tcp", "deny")) if "landlock_net" in required else None,
                scope="landlock_scope" in required,
            ),
        )
        if ok:
            if abi >= 4 and "landlock_net" in required:
                layers.append("landlock_net")
            if abi >= 6 and "landlock_scope" in required:
                layers.append("landlock_scope")

    # 6. seccomp, last.
    step(
        "seccomp",
        lambda: seccomp.install(_rules(policy.get("syscalls", [])), policy.get("seccomp_bpf")),
    )

    return {"layers": layers, "missing": missing, "notes": notes, "uid": os.getuid()}
