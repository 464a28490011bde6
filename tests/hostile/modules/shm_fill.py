"""Hostile module: Fill /dev/shm: tmpfs memory outside the worker's address space."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ShmFill(Hostile):
    """Fill /dev/shm: tmpfs memory outside the worker's address space."""

    def attempt(self):
        def go():
            with open("/dev/shm/plexisandbox-fill", "wb") as f:
                f.write(b"x" * (1 << 20))
        return outcome(go)
