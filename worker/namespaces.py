"""Worker side: identity and namespaces — a distinct uid (root host) or a user namespace,
and a network namespace when network is not declared.

Root host: the worker still runs as root here, so it can create the network namespace, then
drops to its own unprivileged uid (allocated by the supervisor, unique per live worker across
the machine). Dropping the uid clears every capability and makes RLIMIT_NPROC count again
(it is ignored for uid 0), and a distinct uid keeps workers out of each other's /proc.

A distinct uid cannot traverse a 0700 directory such as /root, where pyenv and many venvs
live. Before dropping it, the worker enters a private mount namespace and *masks* each such
ancestor with a read-only tmpfs holding bind mounts of just the children it needs: the
runtime stays reachable, and the rest of /root disappears from view (Landlock denies it in
any case).

Non-root host: a new user namespace mapping the host uid to itself, then the network
namespace, then every capability in the new namespace is dropped.

Forked by the zygote on a root host, a worker *joins* namespaces the zygote prepared instead
of creating its own (`join`): one empty network namespace that every worker without network
shares, and one masked mount namespace per distinct set of runtime paths. unshare(CLONE_NEWNET)
costs ~0.5 ms per worker here (and more again when the last process leaves it: the kernel
tears each network namespace down in a workqueue); the mount masking another ~0.5 ms. Why
sharing them confines as much as private copies is argued in docs/security.md.
"""

from __future__ import annotations

import ctypes
import os
import stat

__all__ = [
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "drop_capabilities",
    "drop_to_uid",
    "enter_netns",
    "enter_userns",
    "join",
    "mask_untraversable",
    "rearm_pdeathsig",
]

CLONE_NEWNS = _CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = _CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_KEEPCAPS = 8

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data is not None else None,
        ),
        f"mount {target}",
    )


def _unshare(flags: int, what: str) -> None:
    _check(_libc.unshare(flags), f"unshare({what})")


def _first_untraversable(path: str) -> tuple[str, str] | None:
    """(ancestor, child) for the outermost ancestor of `path` that others cannot search."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 1):
        ancestor = "/" + "/".join(parts[: i + 1])
        try:
            mode = os.stat(ancestor).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return ancestor, parts[i + 1]
    return None


def mask_untraversable(paths: list[str]) -> list[str]:
    """Make every path in `paths` reachable by an unprivileged uid; returns masked dirs.

    Must run as root, before dropping the uid. Enters a private mount namespace (mounts made
    here are invisible to the host and vanish with the worker).
    """
    masked: list[str] = []
    entered = False
    for _ in range(8):  # nested 0700 directories need one round each
        todo: dict[str, set[str]] = {}
        for path in paths:
            found = _first_untraversable(path)
            if found is not None:
                todo.setdefault(found[0], set()).add(found[1])
        if not todo:
            return masked
        if not entered:
            _unshare(_CLONE_NEWNS, "CLONE_NEWNS")
            _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
            entered = True
        for ancestor in sorted(todo, key=len):
            children = sorted(todo[ancestor])
            fds = {
                c: os.open(os.path.join(ancestor, c), os.O_PATH | os.O_CLOEXEC) for c in children
            }
            try:
                st = os.stat(ancestor)
                _mount(
                    "plexisandbox",
                    ancestor,
                    "tmpfs",
                    _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                    f"size=64k,mode={stat.S_IMODE(st.st_mode) | 0o111:o},uid={st.st_uid},"
                    f"gid={st.st_gid}",
                )
                for child, fd in fds.items():
                    target = os.path.join(ancestor, child)
                    if stat.S_ISDIR(os.fstat(fd).st_mode):
                        os.mkdir(target)
                    else:
                        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
                    _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC, None)
                _mount(
                    None,
                    ancestor,
                    None,
                    _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                    None,
                )
            finally:
                for fd in fds.values():
                    os.close(fd)
            masked.append(ancestor)
    raise OSError("runtime paths nest too many untraversable directories")


def join(fd: int, nstype: int) -> None:
    """setns(2) into the namespace `fd` names (then closes `fd`); `nstype` must match it.

    Joining a mount namespace needs a single-threaded caller and resets its root and cwd to
    that namespace's root (the worker's cwd is `/` already).
    """
    try:
        _check(_libc.setns(fd, nstype), f"setns({nstype:#x})")
    finally:
        os.close(fd)


def enter_netns() -> None:
    """A new network namespace: only a downed loopback, no route to anything."""
    _unshare(_CLONE_NEWNET, "CLONE_NEWNET")


def drop_to_uid(uid: int, gid: int) -> None:
    """Root → `uid`/`gid` for good: no supplementary groups, real, effective, saved and fs ids."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise OSError("uid change did not take")


def rearm_pdeathsig(expected_parent: int) -> None:
    """A credential change clears PR_SET_PDEATHSIG (prctl(2)); set it again."""
    import signal

    _check(_libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "PR_SET_PDEATHSIG")
    if os.getppid() != expected_parent:
        os._exit(0)


def enter_userns() -> None:
    """Unprivileged host: a user namespace mapping our uid/gid to themselves."""
    uid, gid = os.getuid(), os.getgid()
    _unshare(_CLONE_NEWUSER, "CLONE_NEWUSER")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Clear effective, permitted and inheritable capabilities (capset(2), version 3)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
