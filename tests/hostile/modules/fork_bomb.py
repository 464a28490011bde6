"""Hostile module: Fork until the machine falls over."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ForkBomb(Hostile):
    """Fork until the machine falls over."""

    def attempt(self):
        pids = []
        def go():
            while len(pids) < 10000:
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                pids.append(pid)
        result = outcome(go)
        result["forked"] = len(pids)
        return result
