"""Hostile module: Read /etc/shadow."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ReadShadow(Hostile):
    """Read /etc/shadow."""

    def attempt(self):
        return outcome(lambda: open("/etc/shadow").read())
