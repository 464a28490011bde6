"""Hostile module: Stay over the data folder's cap while files beside the fill keep being
replaced, so that every measurement of the folder meets an entry that is gone when it looks."""

import collections
import itertools
import os
import threading
import time

from _hostile import Hostile, data_dir


def churn(folder):
    """Create files for ever, unlinking the oldest once 1000 exist."""
    os.makedirs(folder, exist_ok=True)
    live = collections.deque()
    for n in itertools.count():
        name = os.path.join(folder, f"c{n}")
        open(name, "wb").close()
        live.append(name)
        if len(live) > 1000:
            os.unlink(live.popleft())


class DiskFillChurn(Hostile):
    """Stay over the data folder's cap while files beside the fill keep being replaced."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        folder = os.path.join(data_dir(), "churn")
        threading.Thread(target=churn, args=(folder,), daemon=True).start()
        time.sleep(0.5)  # churning at full speed before the folder goes over its cap
        chunk = b"x" * (1 << 20)
        for i in range(16):  # 16 MiB: twice the test's cap, then stay over it for 6 s
            with open(os.path.join(data_dir(), f"fill-{i}"), "wb") as f:
                f.write(chunk)
        time.sleep(6)
        return {"over_the_cap_for_s": 6}
