"""Host side: a distinct unprivileged uid for every live worker when the host runs as root.

RLIMIT_NPROC is not enforced for uid 0, and workers sharing a uid may read each other's
/proc/<pid> and signal each other; one uid per worker closes both. The uid must be unique
across every supervisor on the machine, not only within this one, so a lease is an exclusive
`flock` on /run/plexisandbox/uids/<uid> held for the worker's lifetime; a crashed supervisor's
leases vanish with its file descriptors.
"""

from __future__ import annotations

import fcntl
import os
import tempfile

__all__ = ["UID_BASE", "UID_COUNT", "UidAllocator", "UidLease"]

#: First uid handed to workers: far above distribution and subuid ranges.
UID_BASE = 1_610_000_000
UID_COUNT = 65_536


# One cursor for the whole process, walking all UID_COUNT uids round robin: a released uid
# comes back only after every other one was handed out, so a worker whose last thread or
# zombie is still on its way out (RLIMIT_NPROC counts zombies) never meets its successor.
_cursor = [(os.getpid() * 7919) % UID_COUNT]


class UidLease:
    """One uid held for one worker; `release()` when the worker has exited."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class UidAllocator:
    """Hands out uids UID_BASE..UID_BASE+UID_COUNT-1, machine-wide unique while held."""

    def __init__(self, lock_dir: str | None = None) -> None:
        if lock_dir is None:
            base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
            lock_dir = os.path.join(base, "plexisandbox", "uids")
        self.lock_dir = lock_dir

    def acquire(self) -> UidLease:
        """Lease a free uid.

        Raises:
            OSError: all UID_COUNT uids are held (or the lock folder is unusable).
        """
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        for _ in range(UID_COUNT):
            uid = UID_BASE + _cursor[0]
            _cursor[0] = (_cursor[0] + 1) % UID_COUNT
            fd = os.open(
                os.path.join(self.lock_dir, str(uid)),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o600,
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return UidLease(uid, fd)
        raise OSError("no free worker uid: 65536 workers are running on this machine")
