"""Hostile module: Allocate (and touch) memory until something gives."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class MemoryBomb(Hostile):
    """Allocate (and touch) memory until something gives."""

    def attempt(self):
        hoard = []
        def go():
            while True:
                hoard.append(bytearray(32 * 1024 * 1024))
        result = outcome(go)
        result["mib"] = 32 * len(hoard)
        hoard.clear()
        return result
