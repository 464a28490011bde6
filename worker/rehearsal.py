"""Worker side: a zygote's spare child runs a worker's start-up once on made-up data.

Why: a forked child's first write to a page it shares with the zygote copies that page
(copy-on-write: a fault, ~2.5 µs on this VM), and CPython writes to every object it so much as
touches (reference counts, the allocator's free lists). A worker's start from HELLO to its
first answer touched ~800 shared pages this way — ~2 ms of a few-ms start. A spare waits for
its request anyway: every page it touches first, off the start-up path, is one fault less on
it. So before it waits, the spare runs the same code a worker runs — the frame codec, the
loader and `describe()` on a module of our own, the serve loop answering configure,
initialize, start and a call over a pipe, a Landlock ruleset built and dropped.

What it must not do, and does not:
- run module code: the module is the runtime's own, defined below;
- leave anything behind that a worker could observe: the module leaves `sys.modules`,
  `sys.path` and `BaseModule._runtime` are restored, descriptors closed, tasks finished;
- confine, or start a thread: confinement starts single-threaded, after the request;
- delay a request: it stops between steps as soon as one is waiting (`stop()`), so a spare
  forked for a waiting request (no spare was ready) skips it altogether.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import marshal
import os
import sys
from collections.abc import Callable
from typing import Any

from plexisandbox._protocol import WIRE_VERSION, FrameDecoder, Op, encode
from plexisandbox.interfaces import BaseModule

from . import landlock
from .channel import BlockingReader, FrameWriter
from .loader import instantiate, load_class
from .main import describe
from .serve import Runtime

__all__ = ["rehearse"]

_SOURCE = '''
"""The module a spare loads in its rehearsal (plexisandbox_worker.rehearsal)."""

from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class RehearsalModule(BaseModule):
    """Echoes its arguments back."""

    def __init__(self, name: str = "rehearsal", version: str = "1.0.0"):
        super().__init__(name, version)

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": "", "author": ""}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def echo(self, value: Any = None) -> Any:
        return value
'''
_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_rehearsal_module.py")
_STEM = "_rehearsal"
#: Compiled once, in the zygote: the children share it, as they share a host-compiled module.
_CODE = marshal.dumps(compile(_SOURCE, _PATH, "exec", dont_inherit=True, optimize=0))


def rehearse(loop: asyncio.AbstractEventLoop, stop: Callable[[], bool]) -> int:
    """Run the start-up steps on made-up data until `stop()` says a request is waiting;
    return how many steps ran. Never raises: a step that fails only ends the rehearsal."""
    steps: list[Callable[[], object]] = [
        _frames,
        _landlock,
        lambda: _module_and_serve(loop),
    ]
    done = 0
    saved_path, saved_runtime = list(sys.path), BaseModule._runtime
    try:
        for step in steps:
            if stop():
                break
            step()
            done += 1
    except Exception:
        pass  # a rehearsal, not a start: the real one reports its own failures
    finally:
        sys.path[:] = saved_path
        BaseModule._runtime = saved_runtime
        sys.modules.pop("plexisandbox_module_" + _STEM, None)
        gc.collect()  # the module's class and its cycles: gone before the request comes
    return done


def _frames() -> None:
    """HELLO and a BOOT-sized message through the worker's writer and reader."""
    rules = [[f"syscall{i}", "allow", [] if i % 9 else [[0, 0xFFFFFFFF, i]]] for i in range(160)]
    boot = {
        "wire": WIRE_VERSION,
        "module": _STEM,
        "policy": {
            "module": _STEM,
            "strict": True,
            "env": [["PATH", "/usr/bin:/bin"], ["LANG", "C.UTF-8"]],
            "layers": ["rlimits", "uid", "netns", "no_new_privs", "landlock", "seccomp"],
            "rlimits": [["NOFILE", 256, 256], ["AS", 1 << 30, 1 << 30]],
            "read": [sys.prefix, os.path.dirname(_PATH)],
            "write": ["/dev/null"],
            "syscalls": rules,
            "seccomp_bpf": {"bpf": bytes(8 * 400), "pid_at": [3, 9], "rules": 160},
        },
        "source": {"kind": "file", "path": _PATH, "stem": _STEM, "code": _CODE},
        "log_level": 20,
    }
    read, write = os.pipe2(os.O_CLOEXEC)
    try:
        writer = FrameWriter(write)
        writer.send([Op.HELLO, {"wire": WIRE_VERSION, "pid": os.getpid(), "python": "3"}])
        writer.send_frame(encode([Op.BOOT, boot]))
        reader = BlockingReader(read)
        reader.next()
        reader.next()
    finally:
        os.close(read)
        os.close(write)


def _landlock() -> None:
    """A ruleset built like the worker's, then dropped: nobody is restricted."""
    if landlock.abi_version() < 1:
        return
    fd, _ = landlock.build_ruleset(
        [sys.prefix, os.path.dirname(_PATH)], ["/dev/null"], tcp="deny", scope=True
    )
    os.close(fd)


def _module_and_serve(loop: asyncio.AbstractEventLoop) -> None:
    """Load, describe and serve the rehearsal module: configure, initialize, start, a call."""
    source = {
        "kind": "file",
        "path": _PATH,
        "stem": _STEM,
        "class": None,
        "code": _CODE,
        "magic": importlib.util.MAGIC_NUMBER,
    }
    to_worker, from_host = os.pipe2(os.O_CLOEXEC)
    to_host, from_worker = os.pipe2(os.O_CLOEXEC)
    fds = [to_worker, from_host, to_host, from_worker]
    try:
        writer = FrameWriter(from_worker)
        runtime = Runtime(None, writer, to_worker)  # type: ignore[arg-type]
        BaseModule._runtime = runtime
        module = instantiate(load_class(source))
        runtime.module = module
        describe(module)
        os.write(
            from_host,
            b"".join(
                encode(message)
                for message in (
                    [Op.LIFE, 1, "configure", {}],
                    [Op.LIFE, 2, "initialize", None],
                    [Op.LIFE, 3, "start", None],
                    [Op.CALL, 4, "echo", {"value": 1}],
                )
            ),
        )
        loop.run_until_complete(asyncio.wait_for(_serve(runtime, to_host, fds), 1.0))
    finally:
        for fd in fds:
            os.close(fd)
        _finish_tasks(loop)


async def _serve(runtime: Runtime, replies: int, fds: list[int]) -> None:
    """Serve until the four answers are back, then hang up as the host would (closing the
    host's end, which leaves `fds`)."""
    serving = asyncio.get_running_loop().create_task(runtime.serve([]))
    decoder, answers = FrameDecoder(), 0
    os.set_blocking(replies, False)
    for _ in range(200):
        await asyncio.sleep(0)
        try:
            data = os.read(replies, 65536)
        except BlockingIOError:
            continue
        answers += len(decoder.feed(data))
        if answers >= 4:
            break
    host_end = fds.pop(1)
    os.close(host_end)  # end of file: serve() returns
    await serving


def _finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Leave the loop as it was made: no task pending for the worker to inherit."""
    pending: Any = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
