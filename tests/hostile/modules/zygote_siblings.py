"""Hostile module: learn about the other workers from what the zygote left on the stack.

A worker forked by the zygote keeps the zygote's call stack (serve → run → fork_spare →
the spare's and the worker's own frames); `self` in fork_spare is the zygote's bookkeeping.
"""

import sys

from _hostile import Hostile


class ZygoteSiblings(Hostile):
    """Walks its own stack up to the zygote's frames."""

    async def attempt(self):
        frame = sys._getframe()
        while frame is not None:
            zygote = frame.f_locals.get("self")
            if type(zygote).__name__ == "_Zygote":
                return {
                    "found": True,
                    "pids": [child.pid for child in zygote.by_pidfd.values()],
                    "paths": sorted({p for key in zygote.mounts for p in key}),
                }
            frame = frame.f_back
        return {"found": False, "pids": [], "paths": []}
