"""Hostile module: Write one file far beyond the file size limit."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class HugeFile(Hostile):
    """Write one file far beyond the file size limit."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        written = [0]
        def go():
            with open(os.path.join(data_dir(), "huge.bin"), "wb", buffering=0) as f:
                chunk = b"x" * (1 << 20)
                while written[0] < (1 << 30):
                    written[0] += f.write(chunk)
        result = outcome(go)
        result["written"] = written[0]
        return result
