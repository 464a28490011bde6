"""Hostile module: mknod a character device for /dev/mem."""

import os
import stat

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class MknodDevice(Hostile):
    """mknod a character device for /dev/mem."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        return outcome(lambda: os.mknod(os.path.join(data_dir(), "mem"), stat.S_IFCHR | 0o600,
                                        os.makedev(1, 1)))
