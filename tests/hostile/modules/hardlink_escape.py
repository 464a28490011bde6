"""Hostile module: Hard-link /etc/shadow into the data folder."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class HardlinkEscape(Hostile):
    """Hard-link /etc/shadow into the data folder."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        return outcome(lambda: os.link("/etc/shadow", os.path.join(data_dir(), "shadow")))
