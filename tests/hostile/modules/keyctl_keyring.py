"""Hostile module: Read the session keyring (keyctl) and add a key."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class KeyctlKeyring(Hostile):
    """Read the session keyring (keyctl) and add a key."""

    def attempt(self):
        return {"keyctl": syscall_outcome(250, 0, -3),  # KEYCTL_GET_KEYRING_ID, session keyring
                "add_key": syscall_outcome(248, 0, 0, 0, 0, -3)}
