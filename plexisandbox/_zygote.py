"""Host side: the zygote — start workers by forking a clean pre-started interpreter.

`Supervisor(zygote=True)` (or `PLEXISANDBOX_ZYGOTE=1`) starts one zygote lazily, at the first
load: a fresh `python -I -S -B` launched exactly like a worker (allow-listed environment, only
its own socket, its own session, a parent-death signal to the host, cwd `/`), which imports the
worker runtime, calls `gc.freeze()` and then forks one child per module on request
(`plexisandbox_worker.zygote` has the protocol). The child runs the same `main()` a launched
worker runs, so everything after the fork — the parent-death signal, closing every descriptor
but the channel's, the handshake, the module's own uid, namespaces, Landlock and seccomp — is
identical; what is gone is the exec and the imports (~60 ms to HELLO here, ~4 ms forked;
benchmarks/cold_start.py measures both).

Exit status: the worker is the zygote's child, not ours, so the zygote reaps it and reports
the status through a per-worker status pipe (`ZygoteChild`), which is also what wakes the
host's exit watcher; a pidfd the zygote opened for the child, handed over with the pipe,
carries the host's signals to exactly that process.

If the zygote dies (all its workers die with it: their parent-death signal), the next load
starts a new one, and says so in the log; if a new one cannot be started, workers are
launched the plain way, so a broken zygote never stops a module from starting.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import msgpack

from ._launcher import (
    LaunchedWorker,
    bootstrap_code,
    channel_pipes,
    launch_worker,
    start_interpreter,
    write_ahead,
)
from ._policy import SandboxPolicy

__all__ = ["Zygote", "ZygoteChild", "ZygoteError", "zygote_default"]

_log = logging.getLogger("plexisandbox.zygote")

# The worker's bootstrap (plexisandbox._launcher), ending in the zygote's loop instead.
_BOOTSTRAP = bootstrap_code("zygote", "serve", 2)
_READY, _SPAWN, _SPAWNED, _FAILED = "ready", "spawn", "spawned", "failed"
_STATUS = struct.Struct("=i")
_START_TIMEOUT = 20.0  # seconds for a new zygote to import the runtime and say READY
_SPAWN_TIMEOUT = 5.0  # seconds for one fork; a zygote slower than that is wedged
_STOP_GRACE = 2.0
_PLAIN_BACKOFF = 30.0


def zygote_default() -> bool:
    """`Supervisor(zygote=...)`'s default: on when `PLEXISANDBOX_ZYGOTE=1`."""
    return os.environ.get("PLEXISANDBOX_ZYGOTE", "") == "1"


class ZygoteError(OSError):
    """The zygote did not answer a spawn request (it died, or is wedged)."""


class ZygoteChild:
    """A worker forked by the zygote, as a `WorkerProcess` (the subset of `Popen` the host
    uses). The exit status arrives on `status_fd` (closed by `LaunchedWorker.close()`; closing
    it while the worker runs makes the zygote kill it)."""

    def __init__(self, pid: int, status_fd: int, pidfd: int) -> None:
        self._pid = pid
        self._status_fd = status_fd
        self._pidfd = pidfd
        self._returncode: int | None = None

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        # Read on access: the zygote writes the status right after reaping, so a caller
        # about to signal the pid (killpg) learns it is gone instead of hitting a reused pid.
        return self.poll()

    def poll(self) -> int | None:
        """The returncode once the zygote reported it, else None; never blocks long."""
        if self._returncode is not None:
            return self._returncode
        try:
            data = os.read(self._status_fd, _STATUS.size)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if len(data) == _STATUS.size:
            self._returncode = _STATUS.unpack(data)[0]
        elif not data:
            # The zygote died before it could report: its parent-death signal SIGKILLs the
            # worker, which is dying or gone; nothing else can be known about how it ended.
            if select.select([self._pidfd], [], [], 1.0)[0]:
                self._returncode = -signal.SIGKILL
        return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the exit status is known.

        Raises:
            subprocess.TimeoutExpired: still running after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                raise subprocess.TimeoutExpired(f"worker pid {self._pid}", timeout or 0.0)
            select.select([self._status_fd], [], [], left)
        assert self._returncode is not None
        return self._returncode


class Zygote:
    """One zygote process and the host's end of its socket; `spawn()` forks a worker.

    Used by one Supervisor: started at the first `spawn()`, stopped by `aclose()`.
    """

    def __init__(self, task_group: anyio.abc.TaskGroup) -> None:
        self._tg = task_group
        # fast_acquire: an uncontended start-up takes the lock without a pass of the loop.
        self._lock = anyio.Lock(fast_acquire=True)
        self._current: _Instance | None = None
        self._started = 0
        #: How many times a dead or wedged zygote was replaced.
        self.restarts = 0
        self._plain_until = 0.0  # after a zygote failed twice in a row: launch until then

    @property
    def pid(self) -> int | None:
        """The running zygote's pid, if one runs."""
        current = self._current
        return current.process.pid if current is not None else None

    # -- life --------------------------------------------------------------------------------
    async def _start(self) -> _Instance:
        instance = _launch_zygote()
        self._started += 1
        self._tg.start_soon(self._watch, instance)
        try:
            with anyio.fail_after(_START_TIMEOUT):
                await anyio.wait_readable(instance.sock)
            message = msgpack.unpackb(instance.sock.recv(4096))
            if not isinstance(message, list) or message[:1] != [_READY]:
                raise ZygoteError(f"the zygote said {message!r:.80} instead of READY")
        except BaseException:
            instance.stop()
            raise
        self._current = instance
        _log.debug("zygote pid %d ready", instance.process.pid)
        return instance

    async def _watch(self, instance: _Instance) -> None:
        """Relay the zygote's own output (tracebacks only); say so when it dies."""
        out_r, buf = instance.output, b""
        try:
            while True:
                await anyio.wait_readable(out_r)
                try:
                    data = os.read(out_r, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines[-50:]:
                    _log.warning("zygote: %s", line.decode("utf-8", "replace")[:2048])
                buf = buf[-8192:]
            with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_GRACE):
                await anyio.wait_readable(instance.pidfd)
        finally:
            os.close(out_r)
            os.close(instance.pidfd)
            instance.exited.set()
        if self._current is instance and instance.process.poll() is not None:
            _report_death(instance)

    async def aclose(self) -> None:
        """Stop the zygote (any worker it still has dies with it) and reap it."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                instance, self._current = self._current, None
                if instance is None:
                    return
                instance.sock.close()  # EOF: the zygote exits
                with anyio.move_on_after(_STOP_GRACE):
                    await instance.exited.wait()
                instance.stop()

    # -- spawning ------------------------------------------------------------------------------
    async def spawn(
        self, env: Mapping[str, str], *, paths: Sequence[str] | None = None, first: bytes = b""
    ) -> LaunchedWorker:
        """Fork one worker with `env`; it speaks first (HELLO), as a launched worker does.
        `paths` are its policy's Landlock paths: on a root host the zygote prepares the mount
        namespace that makes them reachable for the worker's uid (one per distinct set).
        `first`: a frame put into the worker's input ahead (`_launcher.write_ahead`).

        A dead or wedged zygote is replaced (and logged); if no zygote can be had, the worker
        is launched the plain way, and so are the next ones for `_PLAIN_BACKOFF` seconds
        (a zygote that cannot start must not double every start-up time).

        Raises:
            OSError: no worker could be started at all (fd or process limits).
        """
        async with self._lock:
            if time.monotonic() < self._plain_until:
                return launch_worker(env, first)
            for attempt in (1, 2):
                instance = self._current
                try:
                    if instance is None or instance.process.poll() is not None:
                        if instance is not None:
                            # Dead before its watcher saw the end of its output (a spare
                            # child may hold the output pipe a moment longer): say it here.
                            _report_death(instance)
                            self._current = None
                            instance.stop()
                        if self._started:
                            self.restarts += 1
                            _log.warning("starting a new zygote (restart %d)", self.restarts)
                        instance = await self._start()
                    return await self._spawn_once(instance.sock, env, paths, first)
                except (OSError, TimeoutError, ValueError, msgpack.UnpackException) as exc:
                    _log.warning("zygote failed to fork a worker (attempt %d): %s", attempt, exc)
                    if self._current is not None:
                        self._current.stop()
                        self._current = None
            self._plain_until = time.monotonic() + _PLAIN_BACKOFF
        _log.error(
            "no zygote available; launching workers without one for the next %gs",
            _PLAIN_BACKOFF,
        )
        return launch_worker(env, first)

    async def _spawn_once(
        self,
        sock: socket.socket,
        env: Mapping[str, str],
        paths: Sequence[str] | None,
        first: bytes,
    ) -> LaunchedWorker:
        child_ends, host_ends = channel_pipes()
        try:
            unsent = write_ahead(host_ends[0], first)
            options = {"paths": [str(p) for p in paths]} if paths is not None else {}
            body = msgpack.packb([_SPAWN, [[str(k), str(v)] for k, v in env.items()], options])
            rights = struct.pack("=4i", *child_ends)
            sock.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        except BaseException:
            for fd in host_ends:
                os.close(fd)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        try:
            # Shielded: a reply left unread would answer the next request.
            with anyio.CancelScope(shield=True), anyio.fail_after(_SPAWN_TIMEOUT):
                await anyio.wait_readable(sock)
                data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(8), _CMSG_CLOEXEC)
            fds = _received_fds(ancdata)
            message = msgpack.unpackb(data) if data else None
            if not isinstance(message, list) or not message:
                for fd in fds:
                    os.close(fd)
                raise ZygoteError("the zygote closed its socket")
            if message[0] == _FAILED:
                for fd in fds:
                    os.close(fd)
                raise OSError(f"the zygote could not fork: {str(message[1])[:500]}")
            if message[0] != _SPAWNED or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                raise ZygoteError(f"unexpected zygote reply {message!r:.80}")
            # The pidfd comes from the zygote, opened while the child could not have been
            # reaped yet: it names this worker even if it is already gone.
            pid, (status_fd, pidfd) = int(message[1]), fds
            os.set_blocking(status_fd, False)
        except BaseException:
            for fd in host_ends:
                os.close(fd)
            raise
        to_worker_w, from_worker_r, ctl_w, out_r = host_ends
        return LaunchedWorker(
            process=ZygoteChild(pid, status_fd, pidfd),
            pidfd=pidfd,
            data_read=from_worker_r,
            data_write=to_worker_w,
            ctl_write=ctl_w,
            output_read=out_r,
            exit_fd=status_fd,
            unsent=unsent,
        )


_CMSG_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(payload) // 4
            fds.extend(struct.unpack(f"={count}i", payload[: count * 4]))
    return fds


@dataclass
class _Instance:
    """One zygote process: its socket, pidfd and output pipe."""

    process: subprocess.Popen[bytes]
    sock: socket.socket
    pidfd: int
    output: int
    exited: anyio.Event = field(default_factory=anyio.Event)
    stopped: bool = False
    reported: bool = False  # its unrequested death was logged

    def stop(self) -> None:
        """Close our end, SIGKILL the zygote if it still runs, reap it. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        self.sock.close()
        if self.process.poll() is None:
            try:
                self.process.kill()
            except OSError:
                pass
            self.process.wait()


def _launch_zygote() -> _Instance:
    """Start a zygote the way a worker is started (see plexisandbox._launcher)."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        # The policy's baseline environment: what glibc reads once at start-up
        # (MALLOC_ARENA_MAX) is what every child runs with.
        process = start_interpreter(
            _BOOTSTRAP,
            [str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(),),
            output=out_w,
            env=dict(SandboxPolicy(module="zygote").env),
        )
    except BaseException:
        parent.close()
        os.close(out_r)
        raise
    finally:
        child.close()
        os.close(out_w)
    parent.setblocking(False)
    os.set_blocking(out_r, False)
    return _Instance(process, parent, os.pidfd_open(process.pid), out_r)


def _report_death(instance: _Instance) -> None:
    """Log, once, that a zygote died without being asked to stop."""
    if instance.stopped or instance.reported:
        return
    instance.reported = True
    # Every worker it forked died with it (their parent-death signal). The next spawn()
    # starts a new zygote.
    _log.warning(
        "the zygote (pid %d) died (%s); its workers died with it; a new zygote starts "
        "at the next load",
        instance.process.pid,
        _describe(instance.process.returncode),
    )


def _describe(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
