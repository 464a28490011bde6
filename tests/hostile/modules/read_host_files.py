"""Hostile module: Read host files a module has no business with: /etc/passwd, /root."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ReadHostFiles(Hostile):
    """Read host files a module has no business with: /etc/passwd, /root."""

    def attempt(self):
        return {"passwd": outcome(lambda: open("/etc/passwd").read()),
                "root": outcome(lambda: os.listdir("/root")),
                "home": outcome(lambda: os.listdir("/home"))}
