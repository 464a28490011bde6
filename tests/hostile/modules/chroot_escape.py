"""Hostile module: chroot(): the classic first step of a chroot break-out."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ChrootEscape(Hostile):
    """chroot(): the classic first step of a chroot break-out."""

    def attempt(self):
        return outcome(lambda: os.chroot("/"))
