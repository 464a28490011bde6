"""Hostile module: Plant a symlink to /etc/shadow in the data folder and read through it."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class SymlinkEscape(Hostile):
    """Plant a symlink to /etc/shadow in the data folder and read through it."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        link = os.path.join(data_dir(), "shadow")
        with open(os.path.join(data_dir(), "x"), "w") as f:
            f.write("mine")
        return {"symlink": outcome(lambda: os.symlink("/etc/shadow", link)),
                "rename_out": outcome(lambda: os.rename(os.path.join(data_dir(), "x"), "/tmp/x"))}
