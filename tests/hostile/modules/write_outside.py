"""Hostile module: Write outside the data folder: the repository, /tmp, the module's folder."""

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class WriteOutside(Hostile):
    """Write outside the data folder: the repository, /tmp, the module's folder."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self, targets=()):
        return {t: outcome(lambda t=t: open(t, "w").write("pwned")) for t in targets}
