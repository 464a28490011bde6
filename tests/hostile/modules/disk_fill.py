"""Hostile module: Fill the data folder with many files, each under the file size limit."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class DiskFill(Hostile):
    """Fill the data folder with many files, each under the file size limit."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        chunk = b"x" * (1 << 20)
        i = 0
        while True:
            with open(os.path.join(data_dir(), f"fill-{i}"), "wb") as f:
                f.write(chunk)
            i += 1
