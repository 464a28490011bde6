"""Worker side: Landlock through raw syscalls (ctypes), about a hundred lines.

Why ctypes rather than a binding: the kernel ABI is three syscalls and two packed structs,
stable since 5.13 and extended by ABI version; owning it keeps the worker free of a third-party
dependency whose ABI table might lag or run ahead of the kernel (landlockpy claims ABIs no
released kernel has; py-landlock silently picks strict defaults), and lets us say exactly which
rights each ABI handles. See landlock(7) and Documentation/userspace-api/landlock.rst.
"""

from __future__ import annotations

import ctypes
import os
import stat

__all__ = ["LandlockError", "abi_version", "build_ruleset", "restrict"]

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
MAKE_SYM, REFER, TRUNCATE, IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

# Rights a rule on a regular file may carry; anything else is EINVAL there.
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
_READ = READ_FILE | READ_DIR
_READ_WRITE = (
    READ_FILE
    | READ_DIR
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | REFER
    | TRUNCATE
)


class LandlockError(OSError):
    """Landlock refused (or this kernel lacks the ABI the policy needs)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _sys(number: int, *args: object) -> int:
    result = int(_libc.syscall(ctypes.c_long(number), *args))
    if result < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock syscall {number}: {os.strerror(err)}")
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI, 0 when Landlock is absent or disabled."""
    try:
        return _sys(
            _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
        )
    except LandlockError:
        return 0


def _handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(
    read: list[str], write: list[str], *, tcp: str | None, scope: bool
) -> dict[str, object]:
    """Enforce: `read` paths read-only, `write` paths read-write, nothing else; TCP per
    `tcp` ("deny": no bind, no connect; "connect": connect anywhere, no bind; None: TCP not
    handled) on ABI >= 4;
    signal and abstract-unix scoping on ABI >= 6 when `scope`. Requires no_new_privs (or
    CAP_SYS_ADMIN) already set. Returns {"abi", "net", "scope", "skipped"}.

    Raises:
        LandlockError: Landlock is unavailable or refused a rule.
    """
    ruleset, info = build_ruleset(read, write, tcp=tcp, scope=scope)
    try:
        _sys(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return info


def build_ruleset(
    read: list[str], write: list[str], *, tcp: str | None, scope: bool
) -> tuple[int, dict[str, object]]:
    """The ruleset `restrict()` enforces, as a descriptor (the caller closes it), and its
    {"abi", "net", "scope", "skipped"}. Building one restricts nobody.

    Raises:
        LandlockError: Landlock is unavailable or refused a rule.
    """
    abi = abi_version()
    if abi < 1:
        raise LandlockError(0, "Landlock is not available (kernel < 5.13 or lsm= lacks it)")
    handled = _handled_fs(abi)
    net = abi >= 4 and tcp is not None
    scoped = abi >= 6 and scope
    attr = _RulesetAttr(
        handled,
        (NET_BIND_TCP | (NET_CONNECT_TCP if tcp == "deny" else 0)) if net else 0,
        (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if scoped else 0,
    )
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _sys(
        _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    skipped: list[str] = []
    try:
        for paths, rights in ((read, _READ), (write, _READ_WRITE)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    skipped.append(path)
                    continue
                try:
                    allowed = rights & handled
                    if not stat.S_ISDIR(os.fstat(fd).st_mode):
                        allowed &= _FILE_RIGHTS
                    rule = _PathBeneath(allowed, fd)
                    _sys(
                        _SYS_ADD_RULE,
                        ruleset,
                        _RULE_PATH_BENEATH,
                        ctypes.byref(rule),
                        ctypes.c_uint32(0),
                    )
                finally:
                    os.close(fd)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset, {"abi": abi, "net": net, "scope": scoped, "skipped": skipped}
