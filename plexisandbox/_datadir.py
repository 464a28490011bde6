"""Host side: a module's private data folder — creation, ownership, size — touched safely.

The folder's contents are written by a hostile module. Whenever the supervisor walks or
changes it, it opens every directory with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS) relative to the one above and never follows a link, so a link the
module planted (to /etc/shadow, to another module's folder, to /) is never followed with the
supervisor's privileges: chown and stat act on the link itself, never on its target.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._limits import Limits
    from ._policy import SandboxPolicy
    from ._uids import UidLease
    from ._worker import WorkerConnection

__all__ = [
    "DataDirError",
    "open_beneath",
    "prepare_data_dir",
    "release_after_exit",
    "usage",
]

#: Seconds between two measurements of a live worker's data folder.
QUOTA_INTERVAL = 0.25
#: Measurements in a row that may fail (an entry vanished while the folder was walked)
#: before the folder counts as over its cap: 2 s.
UNMEASURED_MAX = 8

_SYS_OPENAT2 = 437
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_XDEV
#: Each file or directory is charged at least this much, so a million empty files count.
INODE_COST = 4096
#: A walk gives up (and reports over quota) beyond this many entries.
MAX_ENTRIES = 200_000
_MAX_DEPTH = 64


class DataDirError(OSError):
    """The data folder is not what the supervisor created (a link, a file, too deep)."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def open_beneath(dir_fd: int, name: str, flags: int = os.O_RDONLY | os.O_DIRECTORY) -> int:
    """openat2(dir_fd, name) beneath dir_fd, refusing every symlink and magic link.

    Raises:
        OSError: ELOOP/EXDEV for a link or an escape, ENOTDIR, ENOENT, ...
    """
    how = _OpenHow(flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0, _RESOLVE)
    fd = int(
        _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            os.fsencode(name),  # scandir gives undecodable names as surrogates: not UTF-8
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"openat2 {name!r} beneath fd {dir_fd}: {os.strerror(err)}")
    return fd


@contextmanager
def _opened(dir_fd: int, name: str) -> Iterator[int]:
    fd = open_beneath(dir_fd, name)
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(dir_fd: int, depth: int, visit: list[int], chown: tuple[int, int] | None) -> int:
    """Bytes (allocated) plus INODE_COST per entry below dir_fd; chown entries when asked."""
    if depth > _MAX_DEPTH:
        raise DataDirError(errno.ELOOP, "data folder nests deeper than 64 levels")
    total = 0
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            visit[0] += 1
            if visit[0] > MAX_ENTRIES:
                raise DataDirError(errno.EDQUOT, f"data folder holds over {MAX_ENTRIES} entries")
            st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
            total += st.st_blocks * 512 + INODE_COST
            if chown is not None:
                os.chown(entry.name, *chown, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                with _opened(dir_fd, entry.name) as child:
                    total += _walk(child, depth + 1, visit, chown)
    return total


def prepare_data_dir(path: str, uid: int | None) -> str:
    """Create `path` (mode 0700) under its parent if missing and give it, with everything in
    it, to `uid` (when the worker runs under its own uid). Returns the real path.

    The parent (the supervisor's data root) is created mode 0711: workers may traverse it
    but not list their neighbours.

    Raises:
        DataDirError: `path` exists as something other than a plain directory.
    """
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, mode=0o711, exist_ok=True)
    parent_fd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)  # mkdirat: never follows a final link
        except FileExistsError:
            pass
        try:
            fd = open_beneath(parent_fd, name)
        except OSError as exc:
            raise DataDirError(exc.errno or errno.EIO, f"data folder {path!r}: {exc}") from exc
        try:
            if uid is not None:
                os.fchown(fd, uid, uid)
                os.fchmod(fd, 0o700)
                _walk(fd, 0, [0], (uid, uid))
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)
    return os.path.join(os.path.realpath(parent), name)


def usage(path: str) -> int:
    """Bytes the data folder uses (allocated blocks plus INODE_COST per entry), measured
    without following any link.

    Raises:
        DataDirError: more than MAX_ENTRIES entries or deeper than 64 levels (treat as over).
        OSError: the folder cannot be opened.
    """
    parent, name = os.path.split(os.path.abspath(path))
    parent_fd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with _opened(parent_fd, name) as fd:
            return _walk(fd, 0, [0], None)
    finally:
        os.close(parent_fd)


async def release_after_exit(
    conn: WorkerConnection, lease: UidLease | None, policy: SandboxPolicy, limits: Limits
) -> None:
    """Hold the worker's uid lease until it has exited; meanwhile keep its data folder under
    `Limits.data_mb` (measured every QUOTA_INTERVAL; above it the worker is killed with
    LimitExceeded(limit="data_mb"))."""
    import anyio

    from .errors import LimitExceeded

    try:
        if policy.data_dir is None:
            await conn.exited.wait()
            return
        threshold = limits.data_mb * 1024 * 1024
        unmeasured = 0
        while conn.alive:
            with anyio.move_on_after(QUOTA_INTERVAL):
                await conn.exited.wait()
            if not conn.alive:
                break
            hint = (
                "the data folder is over its cap; raise Limits(data_mb=...) or have the module "
                "clean up"
            )
            try:
                used = await anyio.to_thread.run_sync(usage, policy.data_dir)
                observed = f"{used / 1048576:.1f} MiB"
                unmeasured = 0
            except DataDirError as exc:
                used, observed = threshold + 1, str(exc)
            except OSError as exc:
                # An entry vanished (or became something else) between the listing and the
                # look: the module changes its folder while it is walked. Skipping every such
                # round would let a module that keeps a few files changing stay over its cap
                # for ever, so it gets UNMEASURED_MAX rounds in a row, then counts as over.
                unmeasured += 1
                if unmeasured < UNMEASURED_MAX:
                    continue
                used = threshold + 1
                observed = f"unmeasurable for {unmeasured} measurements in a row ({exc.strerror})"
                hint = (
                    "the module's data folder changed under every measurement for "
                    f"{UNMEASURED_MAX * QUOTA_INTERVAL:g}s, so its size could not be checked; "
                    "have the module create and delete files less often"
                )
            if used > threshold:
                conn.kill(
                    "limit",
                    f"data folder {observed} > Limits.data_mb={limits.data_mb} MiB",
                    LimitExceeded(
                        module=conn.name,
                        limit="data_mb",
                        observed=observed,
                        threshold=f"{limits.data_mb} MiB",
                        hint=hint,
                    ),
                )
                await conn.exited.wait()
    finally:
        if lease is not None:
            lease.release()
