"""Hostile module: Read host files a module has no business with: /etc/passwd, /root, the
host application's own checkout (its configuration and secrets)."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ReadHostFiles(Hostile):
    """Read host files a module has no business with: /etc/passwd, /root."""

    def attempt(self, app_file="/nonexistent"):
        return {"passwd": outcome(lambda: open("/etc/passwd").read()),
                "app": outcome(lambda: open(app_file).read()),
                "root": outcome(lambda: os.listdir("/root")),
                "home": outcome(lambda: os.listdir("/home"))}
