"""Pure core (both sides): the sandbox policy and its derivation from declared permissions.

`derive_policy()` maps (declared permissions, limits, host facts) to a `SandboxPolicy`: the
rlimits, namespaces, Landlock rules, seccomp allow-list and environment one worker applies to
itself before any module code is imported (`plexisandbox_worker.confine`). It is pure and
deterministic — equal inputs give equal policies, so `ModuleHandle._boot` can keep the probe
worker when the declaration asks for no more than the baseline — and explainable: every rule
carries the permission or limit that caused it (`explain()`, `plexisandbox policy MODULE`).

Only stdlib here: the worker imports this module's data types (never `HostFacts.detect`'s
host-side helpers, which are imported lazily).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ._limits import Limits
from .interfaces import ModulePermissions

__all__ = [
    "LAYERS",
    "HostFacts",
    "PathRule",
    "RlimitRule",
    "SandboxPolicy",
    "SyscallRule",
    "derive_policy",
    "file_access_declared",
    "network_declared",
]

# Every confinement layer, in the order the worker applies them (see worker/confine.py).
LAYERS: tuple[str, ...] = (
    "rlimits",
    "uid",  # a distinct unprivileged uid per worker (host is root)
    "userns",  # a user namespace instead (host is not root)
    "netns",
    "no_new_privs",
    "landlock",
    "landlock_net",
    "landlock_scope",
    "seccomp",
)

_BASE_ENV: tuple[tuple[str, str], ...] = (
    ("PATH", "/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("HOME", "/nonexistent"),
    # glibc arenas reserve 64 MiB of address space each; two keep RLIMIT_AS meaningful.
    ("MALLOC_ARENA_MAX", "2"),
)

_NETWORK = ("network_access", "external_api_access", "external_api")
_FILES = ("file_system_access", "file_handling", "backup_storage")

# Read-only system paths every Python worker needs after confinement: shared libraries
# (dlopen of extension modules happens at import time, after lockdown), the loader cache,
# time zones, and the harmless character devices.
_SYSTEM_READ = (
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
)
_DEV_WRITE = ("/dev/null",)
# Name resolution and TLS trust stores, only when network is declared.
_NETWORK_READ = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    # The trust store and OpenSSL's configuration; not all of /etc/ssl, whose private/ holds
    # the host's TLS keys (readable to a host user in the ssl-cert group, as web servers run).
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/etc/ca-certificates",
)

# -- seccomp groups ------------------------------------------------------------------------
# Names after systemd's seccomp-util.c where they match. The allow-list is the union of the
# groups a policy selects plus argument-restricted rules; everything else answers EPERM.
SYSCALL_GROUPS: dict[str, list[str]] = {
    "basic-io": (
        "read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek close "
        "close_range dup dup2 dup3 pipe pipe2 fsync fdatasync fadvise64 fcntl"
    ).split(),
    "file-read": (
        "openat open openat2 newfstatat fstat stat lstat statx access faccessat faccessat2 "
        "readlink readlinkat getdents64 getcwd chdir fchdir statfs fstatfs umask"
    ).split(),
    "memory": "brk mmap munmap mprotect mremap madvise msync mincore".split(),
    "io-event": (
        "select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_wait "
        "epoll_pwait epoll_pwait2 eventfd eventfd2 timerfd_create timerfd_settime "
        "timerfd_gettime"
    ).split(),
    "signal": (
        "rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait rt_sigsuspend "
        "sigaltstack restart_syscall pause"
    ).split(),
    "timer": (
        "clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time setitimer "
        "getitimer alarm"
    ).split(),
    "threads": (
        "futex set_robust_list get_robust_list rseq set_tid_address sched_yield "
        "sched_getaffinity exit exit_group"
    ).split(),
    "process-info": (
        "gettid getpid getppid getuid geteuid getgid getegid getgroups getresuid getresgid "
        "getpgrp getpgid getsid uname sysinfo getrusage times getcpu getrlimit getrandom "
        "arch_prctl"
    ).split(),
    "local-ipc": (
        "sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown getsockopt setsockopt "
        "getsockname getpeername"
    ).split(),
    "file-write": (
        "creat mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 ftruncate "
        "truncate fallocate utimensat futimesat utimes utime fchmod fchmodat flock "
        "sync_file_range syncfs"
    ).split(),
    "network-io": "connect".split(),
}

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_CLONE_THREAD = 0x00010000
# Namespace and pidfd flags that must never ride along with a thread clone.
_CLONE_FORBIDDEN = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00001000  # CLONE_PIDFD
    | 0x00000080  # CLONE_NEWTIME
)
_AF_UNIX, _AF_INET, _AF_INET6 = 1, 2, 10
_SOCK_STREAM, _SOCK_DGRAM, _SOCK_TYPE_MASK = 1, 2, 0xF
_IOCTLS = {
    "TCGETS": 0x5401,
    "TIOCGWINSZ": 0x5413,
    "FIONREAD": 0x541B,
    "FIONBIO": 0x5421,
    "FIONCLEX": 0x5450,
    "FIOCLEX": 0x5451,
}
_PRCTLS = {
    "PR_GET_DUMPABLE": 3,
    "PR_SET_NAME": 15,
    "PR_GET_NAME": 16,
    "PR_GET_SECCOMP": 21,
    "PR_CAPBSET_READ": 23,
    "PR_GET_NO_NEW_PRIVS": 39,
    "PR_SET_VMA": 0x53564D41,
}

#: Argument value the worker replaces with its own pid (kill/tgkill to itself only).
SELF_PID = "self"


@dataclass(frozen=True)
class RlimitRule:
    """One rlimit: resource name as in `resource.RLIMIT_*` without the prefix."""

    resource: str
    soft: int
    hard: int
    reason: str


@dataclass(frozen=True)
class PathRule:
    """One Landlock path rule: `access` is "read" or "read-write"; the path is a real path."""

    path: str
    access: str
    reason: str


@dataclass(frozen=True)
class SyscallRule:
    """One seccomp rule. `action` is "allow" or "errno:NAME"; `args` are ANDed
    (index, mask, value) comparisons `(arg[index] & mask) == value`; value may be SELF_PID."""

    name: str
    action: str
    args: tuple[tuple[int, int, int | str], ...]
    reason: str
    group: str


@dataclass(frozen=True)
class HostFacts:
    """What the host offers: paths the runtime needs to read, and kernel features.

    `detect()` measures this host (cached). Tests build it by hand to derive policies without
    processes.
    """

    runtime_paths: tuple[str, ...] = ()
    is_root: bool = False
    landlock_abi: int = 0
    seccomp: bool = False
    userns: bool = False

    @classmethod
    def detect(cls) -> HostFacts:
        """Measure this host once per process."""
        return _detect()


@cache
def _detect() -> HostFacts:
    import sys

    from ._launcher import library_paths, worker_package_dir

    # The interpreter, its stdlib and installed packages, and our two packages — but not
    # every folder on the host's sys.path: that may be the host application's own checkout,
    # with its configuration and secrets beside the code. (The worker's importer treats an
    # unreadable sys.path entry as empty.)
    prefixes = [
        os.path.realpath(p)
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    ]
    libraries = [
        path
        for path in (os.path.realpath(p) for p in library_paths())
        if os.path.basename(path) in ("site-packages", "dist-packages")
        or any(path == p or path.startswith(p + "/") for p in prefixes)
    ]
    candidates = [
        *prefixes,
        os.path.dirname(os.path.realpath(sys.executable)),
        *libraries,
        os.path.dirname(os.path.realpath(__file__)),  # the plexisandbox package
        worker_package_dir(),
    ]
    return HostFacts(
        runtime_paths=_minimal_paths(candidates),
        is_root=os.geteuid() == 0,
        landlock_abi=_landlock_abi(),
        seccomp=_seccomp_available(),
        userns=_userns_available(),
    )


def _minimal_paths(paths: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Real paths, existing, sorted, with any path inside another dropped."""
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    out: list[str] = []
    for path in real:
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return tuple(out)


def _landlock_abi() -> int:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        abi = int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    except (OSError, AttributeError):
        return 0
    return max(abi, 0)


def _seccomp_available() -> bool:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if int(libc.prctl(21, 0, 0, 0, 0)) < 0:  # PR_GET_SECCOMP
            return False
        return ctypes.util.find_library("seccomp") is not None
    except OSError:
        return False


def _userns_available() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read().strip() or 0) > 0
    except (OSError, ValueError):
        return False


def network_declared(declared: ModulePermissions) -> list[str]:
    """The declared names that grant network (empty: none)."""
    return [n for n in _NETWORK if declared.allows(n)]


def file_access_declared(declared: ModulePermissions) -> list[str]:
    """The declared names that grant a private data folder (empty: none)."""
    return [n for n in _FILES if declared.allows(n)]


_wire_syscalls: dict[int, tuple[tuple[SyscallRule, ...], list[list[Any]]]] = {}


def wire_syscalls(rules: tuple[SyscallRule, ...]) -> list[list[Any]]:
    """`rules` as `to_wire()` sends them: [[name, action, [[index, mask, value], ...]], ...].

    Converted once per rule tuple (`_seccomp_rules` hands out the same few): every worker's
    start-up sends them. The list is shared between callers: treat it as read-only.
    """
    entry = _wire_syscalls.get(id(rules))
    if entry is None or entry[0] is not rules:  # (the id of a tuple since collected)
        if len(_wire_syscalls) >= 64:
            _wire_syscalls.clear()
        entry = (rules, [[s.name, s.action, [list(a) for a in s.args]] for s in rules])
        _wire_syscalls[id(rules)] = entry
    return entry[1]


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything the worker applies to itself before importing the module.

    Frozen and built from tuples only, so two policies compare (and hash) by value.
    """

    module: str
    strict: bool = True
    env: tuple[tuple[str, str], ...] = _BASE_ENV
    data_dir: str | None = None
    module_paths: tuple[str, ...] = ()
    #: Layers to apply, in LAYERS order; each must hold in strict mode.
    layers: tuple[str, ...] = ()
    #: Why each layer is there: (layer, reason).
    layer_reasons: tuple[tuple[str, str], ...] = ()
    rlimits: tuple[RlimitRule, ...] = ()
    read_paths: tuple[PathRule, ...] = ()
    write_paths: tuple[PathRule, ...] = ()
    #: Landlock TCP: "deny" (no connect, no bind) or "connect" (connect anywhere, no bind).
    tcp: str = "deny"
    tcp_reason: str = ""
    syscalls: tuple[SyscallRule, ...] = ()
    #: Pre-warmed before the filesystem closes: "dns", "tls".
    prewarm: tuple[str, ...] = ()
    network: bool = False
    file_access: bool = False
    #: Size cap of the data folder, bytes (host-enforced; see _datadir.watch_quota).
    data_bytes: int = 0
    #: Brokered permissions: host services only, never kernel privileges. Informational:
    #: not compared, so a declaration of only brokered permissions keeps the probe worker.
    brokered: tuple[str, ...] = field(default=(), compare=False)

    def to_wire(self) -> dict[str, Any]:
        """Plain msgpack-able data for the worker's `confine.apply()`."""
        return {
            "module": self.module,
            "strict": self.strict,
            "env": [list(kv) for kv in self.env],
            "data_dir": self.data_dir,
            "module_paths": list(self.module_paths),
            "layers": list(self.layers),
            "rlimits": [[r.resource, r.soft, r.hard] for r in self.rlimits],
            "read": [p.path for p in self.read_paths],
            "write": [p.path for p in self.write_paths],
            "tcp": self.tcp,
            "syscalls": wire_syscalls(self.syscalls),
            "prewarm": list(self.prewarm),
        }

    def to_json(self) -> dict[str, Any]:
        """The whole policy as JSON-able data, every rule with its reason."""
        return {
            "module": self.module,
            "strict": self.strict,
            "network": self.network,
            "file_access": self.file_access,
            "layers": [
                {"layer": layer, "reason": dict(self.layer_reasons).get(layer, "")}
                for layer in self.layers
            ],
            "env": dict(self.env),
            "data_dir": self.data_dir,
            "data_bytes": self.data_bytes,
            "rlimits": [
                {"resource": r.resource, "soft": r.soft, "hard": r.hard, "reason": r.reason}
                for r in self.rlimits
            ],
            "landlock": {
                "read": [{"path": p.path, "reason": p.reason} for p in self.read_paths],
                "read_write": [{"path": p.path, "reason": p.reason} for p in self.write_paths],
                "tcp": {"mode": self.tcp, "reason": self.tcp_reason},
            },
            "seccomp": {
                "default": "errno:EPERM",
                "bad_arch": "kill_process",
                "rules": [
                    {
                        "syscall": s.name,
                        "action": s.action,
                        "args": [
                            {
                                "index": i,
                                "mask": hex(m),
                                "value": v if isinstance(v, str) else hex(v),
                            }
                            for i, m, v in s.args
                        ],
                        "group": s.group,
                        "reason": s.reason,
                    }
                    for s in self.syscalls
                ],
            },
            "prewarm": list(self.prewarm),
            "brokered": list(self.brokered),
        }

    def explain(self) -> str:
        """Human-readable: what the module may do and which permission or limit caused it."""
        lines = [
            f"sandbox policy for module {self.module!r} "
            f"({'strict' if self.strict else 'best-effort'}: "
            + (
                "a layer this kernel cannot give refuses the module)"
                if self.strict
                else "missing layers are reported, not fatal)"
            )
        ]
        reasons = dict(self.layer_reasons)
        lines.append("layers, in the order the worker applies them:")
        for layer in self.layers:
            lines.append(f"  {layer:<15} {reasons.get(layer, '')}")
        lines.append("rlimits:")
        for r in self.rlimits:
            lines.append(f"  {r.resource:<10} soft={r.soft} hard={r.hard}  ({r.reason})")
        lines.append("filesystem (Landlock; everything else is denied):")
        for p in self.read_paths:
            lines.append(f"  read        {p.path}  ({p.reason})")
        for p in self.write_paths:
            lines.append(f"  read-write  {p.path}  ({p.reason})")
        if self.data_dir:
            lines.append(f"  data folder capped at {self.data_bytes // (1024 * 1024)} MiB")
        lines.append(f"network: TCP {self.tcp}  ({self.tcp_reason})")
        lines.append("seccomp allow-list (default: EPERM; foreign architectures: kill):")
        groups: dict[str, tuple[str, list[str]]] = {}
        for s in self.syscalls:
            if s.args or s.action != "allow":
                continue
            groups.setdefault(s.group, (s.reason, []))[1].append(s.name)
        for group, (reason, names) in groups.items():
            lines.append(f"  @{group}  ({reason})")
            lines.append(f"      {' '.join(names)}")
        lines.append("  argument rules:")
        for s in self.syscalls:
            if not s.args and s.action == "allow":
                continue
            cond = " and ".join(
                f"arg{i}&{m:#x}=={v if isinstance(v, str) else hex(v)}" for i, m, v in s.args
            )
            lines.append(f"    {s.name} -> {s.action}{' if ' + cond if cond else ''}  ({s.reason})")
        if self.prewarm:
            lines.append(f"pre-warmed before lockdown: {', '.join(self.prewarm)}")
        if self.brokered:
            lines.append(
                "brokered as host services only (never kernel privileges): "
                + ", ".join(self.brokered)
            )
        return "\n".join(lines)


def _group(name: str, reason: str) -> list[SyscallRule]:
    return [SyscallRule(s, "allow", (), reason, name) for s in SYSCALL_GROUPS[name]]


@cache
def _seccomp_rules(network: tuple[str, ...], files: tuple[str, ...]) -> tuple[SyscallRule, ...]:
    """The allow-list for a declaration (cached: a few distinct ones per host, each the same
    tuple object, which also makes comparing two policies cheap)."""
    always = "always: what a Python worker with asyncio and threads needs"
    rules: list[SyscallRule] = []
    for group in (
        "basic-io",
        "file-read",
        "memory",
        "io-event",
        "signal",
        "timer",
        "threads",
        "process-info",
        "local-ipc",
    ):
        rules += _group(group, always)

    def arg_rule(name: str, group: str, reason: str, *args: tuple[int, int, int | str]) -> None:
        rules.append(SyscallRule(name, "allow", tuple(args), reason, group))

    arg_rule(
        "clone",
        "threads",
        "always: threads only (no fork, no namespaces)",
        (0, _CLONE_THREAD | _CLONE_FORBIDDEN, _CLONE_THREAD),
    )
    arg_rule(
        "socketpair",
        "local-ipc",
        "always: AF_UNIX socketpair (asyncio's self-pipe); 32-bit masked",
        (0, _M32, _AF_UNIX),
    )
    for sig_call in ("kill", "tgkill"):
        arg_rule(sig_call, "signal", "always: signals to itself only", (0, _M32, SELF_PID))
    arg_rule(
        "prlimit64",
        "process-info",
        "always: read rlimits only (new_limit must be NULL)",
        (2, _M64, 0),
    )
    for name, value in _IOCTLS.items():
        arg_rule("ioctl", "basic-io", f"always: ioctl {name} only", (1, _M32, value))
    for name, value in _PRCTLS.items():
        arg_rule("prctl", "process-info", f"always: prctl {name} only", (0, _M32, value))
    for persona in (0, _M32):
        arg_rule(
            "personality",
            "process-info",
            "always: PER_LINUX or a query only",
            (0, _M32, persona),
        )
    for name in ("clone3", "pidfd_open"):
        rules.append(
            SyscallRule(
                name,
                "errno:ENOSYS",
                (),
                "always: ENOSYS so libc falls back to calls the filter can inspect",
                "threads",
            )
        )
    if files:
        rules += _group(
            "file-write", f"declared {', '.join(files)}: writes; Landlock decides where"
        )
    if network:
        reason = f"declared {', '.join(network)}"
        rules += _group("network-io", reason)
        for family in (_AF_INET, _AF_INET6):
            for kind in (_SOCK_STREAM, _SOCK_DGRAM):
                arg_rule(
                    "socket",
                    "network-io",
                    f"{reason}: inet stream/datagram sockets (no raw, packet, netlink, unix)",
                    (0, _M32, family),
                    (1, _SOCK_TYPE_MASK, kind),
                )
    return tuple(rules)


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
    """Map a declaration to the confinement one worker applies. Pure and deterministic.

    The policy confines to the *declared* set (least privilege); checking the declaration
    against the operator's grant happens before this is called.
    """
    network = network_declared(declared)
    files = file_access_declared(declared)
    writable = data_dir if files and data_dir else None

    layer_reasons: list[tuple[str, str]] = [
        ("rlimits", "always: Limits are kernel-enforced"),
    ]
    if host.is_root:
        layer_reasons.append(
            ("uid", "always (host is root): a distinct unprivileged uid per worker")
        )
    else:
        layer_reasons.append(("userns", "always (host is not root): a new user namespace"))
    if not network:
        layer_reasons.append(("netns", "network not declared: a network namespace, no interfaces"))
    layer_reasons += [
        ("no_new_privs", "always: no privilege gain through exec (and Landlock requires it)"),
        ("landlock", "always: read-only runtime and module folder, nothing else"),
        (
            "landlock_net",
            "always: TCP "
            + ("bind denied" if network else "bind and connect denied")
            + " (Landlock ABI >= 4)",
        ),
        (
            "landlock_scope",
            "always: no signals or abstract unix sockets outside the sandbox (ABI >= 6)",
        ),
        ("seccomp", "always: syscall allow-list, EPERM otherwise"),
    ]

    mib = 1024 * 1024
    file_mb = min(limits.file_mb, limits.data_mb) if writable else limits.file_mb
    rlimits = (
        RlimitRule("CORE", 0, 0, "always: no core dumps of module memory"),
        RlimitRule("NOFILE", limits.open_files, limits.open_files, "Limits.open_files"),
        RlimitRule(
            "FSIZE",
            file_mb * mib,
            file_mb * mib,
            "Limits.file_mb" + (" (capped by Limits.data_mb)" if writable else ""),
        ),
        RlimitRule(
            "AS",
            limits.address_space_mb * mib,
            limits.address_space_mb * mib,
            "Limits.address_space_mb",
        ),
        RlimitRule(
            "CPU",
            limits.cpu_seconds,
            limits.cpu_seconds + 1,
            "Limits.cpu_seconds (hard one second later, so SIGXCPU comes first)",
        ),
        RlimitRule("NPROC", limits.processes, limits.processes, "Limits.processes (threads count)"),
        RlimitRule("MEMLOCK", 0, 0, "always: no locked memory"),
        RlimitRule("MSGQUEUE", 0, 0, "always: no POSIX message queues"),
        RlimitRule("RTPRIO", 0, 0, "always: no real-time priority"),
    )

    read: list[PathRule] = []
    seen: set[str] = set()

    def add_read(paths: tuple[str, ...] | list[str], reason: str) -> None:
        for path in paths:
            if path not in seen:
                seen.add(path)
                read.append(PathRule(path, "read", reason))

    add_read(list(host.runtime_paths), "always: the Python runtime and its libraries")
    add_read(list(module_paths), "always: the module's own folder")
    add_read(
        [p for p in _SYSTEM_READ if p not in _DEV_WRITE],
        "always: shared libraries, loader cache, time zones, harmless devices",
    )
    if network:
        add_read(list(_NETWORK_READ), f"declared {', '.join(network)}: DNS and TLS files")
    write = [PathRule(p, "read-write", "always: the null device") for p in _DEV_WRITE]
    env = list(_BASE_ENV)
    if writable:
        write.append(
            PathRule(writable, "read-write", f"declared {', '.join(files)}: private data folder")
        )
        # The module finds its folder as BaseModule.data_dir, $PLEXISANDBOX_DATA_DIR or $HOME.
        env = [(k, v) for k, v in env if k != "HOME"]
        env += [("HOME", writable), ("PLEXISANDBOX_DATA_DIR", writable), ("TMPDIR", writable)]

    brokered = sorted(n for n in declared.names() if n not in _NETWORK and n not in _FILES)
    return SandboxPolicy(
        module=module,
        strict=strict,
        env=tuple(env),
        data_dir=writable,
        module_paths=tuple(module_paths),
        layers=tuple(layer for layer, _ in layer_reasons),
        layer_reasons=tuple(layer_reasons),
        rlimits=rlimits,
        read_paths=tuple(read),
        write_paths=tuple(write),
        tcp="connect" if network else "deny",
        tcp_reason=(
            f"declared {', '.join(network)}: connect to any port; listening is not offered"
            if network
            else "network not declared"
        ),
        syscalls=_seccomp_rules(tuple(network), tuple(files)),
        prewarm=("dns", "tls") if network else (),
        network=bool(network),
        file_access=bool(writable),
        data_bytes=limits.data_mb * mib if writable else 0,
        brokered=tuple(brokered),
    )
