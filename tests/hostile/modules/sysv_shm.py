"""Hostile module: SysV shared memory and message queues."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class SysvShm(Hostile):
    """SysV shared memory and message queues."""

    def attempt(self):
        return {"shmget": syscall_outcome(29, 0, 1 << 20, 0o1000 | 0o600),
                "msgget": syscall_outcome(68, 0, 0o1000 | 0o600)}
