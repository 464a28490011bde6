"""Hostile module: personality(READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE)."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class PersonalityExec(Hostile):
    """personality(READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE)."""

    def attempt(self):
        return {"set": syscall_outcome(135, 0x0400000 | 0x0040000),
                "query": syscall_outcome(135, 0xFFFFFFFF)}
