"""Hostile module: Start threads until the process table is full."""

import threading

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ThreadBomb(Hostile):
    """Start threads until the process table is full."""

    def attempt(self):
        stop = threading.Event()
        threads = []
        def go():
            while len(threads) < 5000:
                t = threading.Thread(target=stop.wait, daemon=True)
                t.start()
                threads.append(t)
        result = outcome(go)
        stop.set()
        result["started"] = len(threads)
        return result
