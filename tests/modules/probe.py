"""Test module: a probe that reports on its worker and misbehaves on request.

Loaded by the core integration tests (tests/integration/test_core_*.py). Every method is part
of its API; each answers a question a test asks from *inside* the worker (which fds are open,
what `sys.modules` holds, whether a call was cancelled) or exercises one failure mode.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import hashlib
import os
import stat
import sys
import time
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class Unsendable:
    """A result msgpack cannot carry."""


class ProbeFailure(Exception):
    """The exception `fail()` raises."""


class BrokenStr(Exception):
    """An exception whose str() itself raises, as careless module code can produce."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this exception is broken")


def _explode(message: str) -> None:
    raise ProbeFailure(message)


class Probe(BaseModule):
    """Reports on its own worker; fails, sleeps, blocks and crashes on request."""

    def __init__(self, name: str = "probe", version: str = "1.2.3") -> None:
        super().__init__(name, version)
        self.hook_log: list[str] = []
        self.started_tokens: list[str] = []
        self.cancelled_tokens: list[str] = []
        self.finished_tokens: list[str] = []
        self._arrived: dict[str, int] = {}
        self._gates: dict[str, asyncio.Event] = {}

    # -- contract ----------------------------------------------------------------------------
    def get_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "description": "test probe"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    def _hook(self, name: str) -> bool:
        """Record a lifecycle hook; config {"fail": name} returns False, {"raise": name}
        raises, {"exit": name} ends the worker from inside that hook."""
        self.hook_log.append(name)
        config = self.configuration.custom_config
        if config.get("raise") == name:
            _explode(f"{name} refused")
        if config.get("exit") == name:
            os._exit(3)
        return config.get("fail") != name

    async def initialize(self) -> bool:
        delay = self.configuration.custom_config.get("initialize_delay")
        if delay:
            await asyncio.sleep(delay)
        return self._hook("initialize")

    async def start(self) -> bool:
        await super().start()
        return self._hook("start")

    async def stop(self) -> bool:
        await super().stop()
        return self._hook("stop")

    async def pause(self) -> bool:
        await super().pause()
        return self._hook("pause")

    async def resume(self) -> bool:
        await super().resume()
        return self._hook("resume")

    async def shutdown(self) -> bool:
        print(f"shutdown hook ran after {self.hook_log}")
        delay = self.configuration.custom_config.get("shutdown_delay")
        if delay:
            await asyncio.sleep(delay)
        await super().shutdown()
        return self._hook("shutdown")

    # -- plain calls -------------------------------------------------------------------------
    async def echo(self, value: Any = None) -> Any:
        return value

    def echo_sync(self, value: Any = None) -> Any:
        return value

    async def echo_kwargs(self, **kwargs: Any) -> Any:
        return kwargs

    async def hooks(self) -> list[str]:
        return list(self.hook_log)

    async def module_state(self) -> str:
        return self.state.value

    async def make(self, kind: str) -> Any:
        """A value of a kind msgpack may or may not carry."""
        values: dict[str, Any] = {
            "tuple": (1, (2, 3), "x"),
            "set": {7},
            "nested_tuple_in_dict": {"a": (1, 2)},
            "aware_datetime": datetime.datetime(2024, 2, 29, 12, 30, 15, 250000, datetime.UTC),
            "naive_datetime": datetime.datetime(2024, 2, 29, 12, 30, 15),
            "object": object(),
            "unsendable": Unsendable(),
            "nested_unsendable": {"ok": [1, 2, {"deep": Unsendable()}]},
            "too_big_int": 2**64,
            "too_small_int": -(2**63) - 1,
            "lone_surrogate": "\ud800",
            "generator": (i for i in range(3)),
        }
        return values[kind]

    async def nest(self, depth: int) -> Any:
        value: Any = []
        for _ in range(depth):
            value = [value]
        return value

    async def many(self, n: int) -> list[int]:
        return [0] * n

    async def tuple_key(self, size: int) -> dict[Any, int]:
        return {(i, i): i for i in range(size)}  # msgpack packs the keys as arrays

    async def bulk(self, size: int) -> bytes:
        return b"x" * size

    async def emit_bulk(self, size: int) -> bool:
        return self.emit_event("probe.bulk", b"x" * size)

    async def ask_bulk(self, size: int) -> Any:
        return await self.host.call("probe.nothing", data=b"x" * size)

    # -- failures ----------------------------------------------------------------------------
    async def fail(self, message: str = "probe failed") -> None:
        _explode(message)

    def fail_sync(self, message: str = "probe failed in a thread") -> None:
        _explode(message)

    async def fail_broken_str(self) -> None:
        raise BrokenStr()

    async def exit(self, code: int = 7, last_words: str = "") -> None:
        if last_words:
            print(last_words, file=sys.stderr, flush=True)
        os._exit(code)

    async def close_channel(self) -> None:
        """Close this worker's end of the worker→host pipe, then linger."""
        import fcntl

        for fd in range(3, 256):
            try:
                mode = os.fstat(fd).st_mode
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            except OSError:
                continue
            if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
                os.close(fd)
        await asyncio.sleep(60)

    # -- time and cancellation -----------------------------------------------------------------
    async def sleep(self, seconds: float, token: str = "") -> str:
        """Sleep; remembers whether it started, finished or was cancelled."""
        self.started_tokens.append(token)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled_tokens.append(token)
            raise
        self.finished_tokens.append(token)
        return token

    async def stubborn(self, seconds: float, token: str = "") -> str:
        """Ignores cancellation: keeps sleeping however often it is cancelled."""
        self.started_tokens.append(token)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                await asyncio.sleep(deadline - time.monotonic())
            except asyncio.CancelledError:
                self.cancelled_tokens.append(token)
        return token

    def block(self, seconds: float, token: str = "") -> str:
        """A sync method that blocks its thread (never the worker's event loop)."""
        self.started_tokens.append(token)
        time.sleep(seconds)
        self.finished_tokens.append(token)
        return token

    async def hog(self, seconds: float) -> None:
        """Blocks the worker's event loop itself (frames queue up unread meanwhile)."""
        time.sleep(seconds)  # noqa: ASYNC251

    async def tokens(self) -> dict[str, list[str]]:
        return {
            "started": list(self.started_tokens),
            "cancelled": list(self.cancelled_tokens),
            "finished": list(self.finished_tokens),
        }

    async def rendezvous(self, group: str, n: int, value: Any) -> Any:
        """Returns only once `n` calls of `group` are waiting here at the same time."""
        gate = self._gates.setdefault(group, asyncio.Event())
        self._arrived[group] = self._arrived.get(group, 0) + 1
        if self._arrived[group] >= n:
            gate.set()
        await gate.wait()
        return value

    # -- output ------------------------------------------------------------------------------
    async def say(self, text: str, stream: str = "stdout") -> None:
        print(text, file=sys.stderr if stream == "stderr" else sys.stdout)

    async def flood(self, lines: int) -> None:
        for i in range(lines):
            print(f"flood line {i}")

    async def log_flood(self, records: int) -> None:
        for i in range(records):
            self.logger.warning("flood record %d", i)

    async def raw_stdout(self, data: bytes) -> None:
        os.write(1, data)

    async def log(self, level: int, text: str) -> None:
        self.logger.log(level, "%s", text)

    async def log_exception(self) -> None:
        try:
            _explode("logged failure")
        except ProbeFailure:
            self.logger.exception("something went wrong")

    # -- introspection -------------------------------------------------------------------------
    async def sys_modules(self) -> list[str]:
        return sorted(sys.modules)

    async def identity(self) -> dict[str, Any]:
        main = sys.modules.get("__main__")
        try:
            with open("/proc/self/environ", "rb") as f:  # noqa: ASYNC230
                proc_environ: list[str] | None = [
                    e.decode("utf-8", "replace") for e in f.read().split(b"\0") if e
                ]
        except OSError:
            proc_environ = None
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "sid": os.getsid(0),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "isolated": sys.flags.isolated,
            "no_site": sys.flags.no_site,
            "executable": sys.executable,
            "argv": list(sys.argv),
            "environ": dict(os.environ),
            "proc_environ": proc_environ,
            "main_file": getattr(main, "__file__", None),
            "main_names": sorted(vars(main)) if main is not None else [],
            "path": list(sys.path),
        }

    async def holds_string(self, length: int, sha256: str) -> list[str]:
        """Where a string with this length and digest is found in this process (the string
        itself never travels: the test sends only its digest)."""

        def match(value: Any) -> bool:
            return (
                type(value) is str
                and len(value) == length
                and hashlib.sha256(value.encode("utf-8", "replace")).hexdigest() == sha256
            )

        found: list[str] = []
        if any(match(v) or match(k) for k, v in os.environ.items()):
            found.append("os.environ")
        if any(match(a) for a in sys.argv):
            found.append("sys.argv")
        # Walk everything reachable from the objects the collector tracks, including the
        # containers it does not track (a dict holding only strings is untracked).
        queue = gc.get_objects()
        seen = {id(obj) for obj in queue}
        while queue:
            obj = queue.pop()
            for ref in gc.get_referents(obj):
                if type(ref) is str:
                    if match(ref):
                        found.append(f"in an object of type {type(obj).__name__}")
                        return found
                elif type(ref) in (dict, list, tuple, set, frozenset) and id(ref) not in seen:
                    seen.add(id(ref))
                    queue.append(ref)
        return found

    async def import_caches(self) -> dict[str, Any]:
        """For each folder the import system holds a listing of: can this worker list it?"""
        report: dict[str, Any] = {}
        for path, finder in list(sys.path_importer_cache.items()):
            cached = getattr(finder, "_path_cache", None)
            if not cached:
                continue
            try:
                os.listdir(path)
                readable = True
            except OSError:
                readable = False
            report[path] = {"readable": readable, "names": len(cached)}
        return report

    async def fds(self) -> dict[str, Any]:
        """Every open descriptor (found with fstat, which needs no /proc) and the event
        loop's own descriptors (its epoll fd and self-pipe)."""
        found = []
        for fd in range(4096):
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                continue
            if stat.S_ISFIFO(mode):
                kind = "pipe"
            elif stat.S_ISSOCK(mode):
                kind = "socket"
            elif stat.S_ISREG(mode):
                kind = "file"
            elif stat.S_ISCHR(mode):
                kind = "chr"
            elif stat.S_ISDIR(mode):
                kind = "dir"
            else:
                kind = "other"
            try:
                link = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                link = ""
            found.append([fd, kind, link])
        loop = asyncio.get_running_loop()
        owned = []
        for attr in ("_selector", "_ssock", "_csock"):
            obj = getattr(loop, attr, None)
            if obj is not None:
                owned.append(obj.fileno())
        return {"fds": found, "loop": owned}
