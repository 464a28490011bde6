"""Worker side: the zygote — a clean pre-started interpreter that forks one worker per module.

The host starts it exactly like a worker (`python -I -S -B -c BOOTSTRAP`, an allow-listed
environment, its own session, stdin from /dev/null, cwd `/`), see `plexisandbox._zygote`. It
imports the worker runtime and nothing else (`worker.main` and everything it pulls in: asyncio,
msgpack, the confinement modules, pyseccomp), calls `gc.freeze()` so the children's collector
never writes to the pages they share, and then serves requests on one `AF_UNIX` socketpair
(SOCK_SEQPACKET: one message per request, never a pathname socket).

Protocol (msgpack bodies; SCM_RIGHTS carries descriptors):

    zygote → host   [READY, pid]                                   once, after gc.freeze()
    host → zygote   [SPAWN, [[key, value], ...]]  + 4 fds          data in, data out,
                                                                    control in, output
    zygote → host   [SPAWNED, pid]                + 2 fds          the child's status pipe
                                                                    and a pidfd for it
                    [FAILED, "why"]

The child (`_become_worker`) starts a new session, points stdout/stderr at the output pipe,
takes the policy's environment and runs the very same `main()` a launched worker runs — so
the parent-death signal (its parent is now the zygote, which dies with the host), closing
every descriptor but the channel's, the handshake and all confinement happen there, per module.

Exit status: the zygote sees each child exit through a pidfd, reaps it with
`waitid(P_PIDFD)` and writes the status (a `Popen.returncode`, 4 bytes) to the child's status
pipe, then closes it. Reaping *before* reporting keeps the host's guarantee that a worker
whose exit it has seen is gone (no zombie left behind), as with a child of its own; the pid
could be reused only in the microseconds between the reap and the write, while the host
still signals it by pid (killpg) — it signals through a pidfd first, which cannot misfire.
A host that closes a status pipe while the worker still runs has given up on it: poll(2)
reports POLLERR on the pipe's write end once no reader is left, and the worker is killed.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import struct
import sys
import traceback
from dataclasses import dataclass

import msgpack

# The worker runtime, imported once here so every child starts with it loaded and frozen.
from . import confine, hygiene, landlock, namespaces, rlimits, seccomp  # noqa: F401
from . import main as worker_main

__all__ = ["EXIT_CHILD_SETUP", "FAILED", "READY", "SPAWN", "SPAWNED", "serve"]

READY, SPAWN, SPAWNED, FAILED = "ready", "spawn", "spawned", "failed"
STATUS = struct.Struct("=i")
EXIT_CHILD_SETUP = 72  # the forked child could not become a worker (before HELLO)
_MAX_MESSAGE = 1 << 16
_FD_SPACE = socket.CMSG_SPACE(4 * 4)  # room for exactly the four descriptors of a spawn


@dataclass
class _Child:
    pid: int
    pidfd: int
    status_w: int
    abandoned: bool = False


def _warm_up() -> None:
    """Import what a worker would otherwise import after fork: anything imported here is
    shared copy-on-write by every child instead of costing each one its own copy."""
    import asyncio
    import concurrent.futures  # noqa: F401  (asyncio's default executor, to_thread)
    import importlib.machinery  # noqa: F401
    import inspect  # noqa: F401
    import logging  # noqa: F401
    import socket as _socket  # noqa: F401
    import ssl  # noqa: F401  (asyncio imports it; TLS pre-warm when network is declared)
    import threading  # noqa: F401

    # An event loop's first creation imports the selector machinery; do it once here.
    loop = asyncio.new_event_loop()
    loop.close()
    # Configuring a module validates its config with jsonschema (BaseModule.validate_config,
    # plexisandbox._configcheck): ~40 ms of imports and meta-schema loading per worker
    # unless they are done once, here.
    try:
        import jsonschema
        from plexisandbox._configcheck import check_config

        schema = {"type": "object", "properties": {"n": {"type": "integer", "default": 1}}}
        jsonschema.validators.validator_for(schema)(schema).is_valid({})
        check_config(schema, {})
    except ImportError:  # pragma: no cover - jsonschema is a runtime dependency
        pass


def _become_worker(fds: list[int], env: list[list[str]], zygote: int) -> None:
    """In the forked child: become what `python -I -S -B -c BOOTSTRAP` would have been."""
    try:
        fd_in, fd_out, fd_ctl, fd_output = fds
        os.setsid()  # own session and process group: killpg(pid) reaches exactly this worker
        os.dup2(fd_output, 1)
        os.dup2(fd_output, 2)
        os.close(fd_output)
        # The policy's environment (os.environ writes through to the C environ). What glibc
        # reads once at start-up (MALLOC_ARENA_MAX) came from the zygote's own environment,
        # which is the policy's baseline allow-list.
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env})
        sys.argv[1:] = []
        gc.enable()
    except BaseException:
        traceback.print_exc()
        os._exit(EXIT_CHILD_SETUP)
    try:
        # Hygiene (parent-death signal, every descriptor but the channel's closed), the
        # handshake, this module's own confinement (uid, netns, Landlock, seccomp), serve.
        worker_main.main([str(fd_in), str(fd_out), str(fd_ctl), str(zygote)])
    except BaseException:
        traceback.print_exc()
    os._exit(1)  # what a plain worker's interpreter exits with on an uncaught exception


def _returncode(pidfd: int, options: int) -> int:
    result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | options)
    if result is None:  # pragma: no cover - only with WNOHANG
        raise ChildProcessError("child not exited")
    if result.si_code == os.CLD_EXITED:
        return int(result.si_status)
    return -int(result.si_status)  # CLD_KILLED / CLD_DUMPED, as Popen.returncode says it


class _Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.poller = select.poll()
        self.by_pidfd: dict[int, _Child] = {}
        self.by_status: dict[int, _Child] = {}

    def send(self, message: list[object], fds: list[int] | None = None) -> None:
        body = msgpack.packb(message)
        if fds:
            rights = struct.pack(f"={len(fds)}i", *fds)
            self.sock.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        else:
            self.sock.send(body)

    def run(self) -> None:
        self.poller.register(self.sock.fileno(), select.POLLIN)
        while True:
            try:
                events = self.poller.poll()
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            for fd, mask in events:
                if fd == self.sock.fileno():
                    if not self.on_request(mask):
                        return
                elif fd in self.by_pidfd:
                    self.on_exit(self.by_pidfd[fd])
                elif fd in self.by_status:
                    self.on_released(self.by_status[fd])

    # -- requests from the host --------------------------------------------------------------
    def on_request(self, mask: int) -> bool:
        try:
            data, ancdata, flags, _ = self.sock.recvmsg(_MAX_MESSAGE, _FD_SPACE)
        except OSError:
            return False
        fds = [
            fd
            for level, kind, payload in ancdata
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
            for fd in struct.unpack(f"={len(payload) // 4}i", payload[: len(payload) // 4 * 4])
        ]
        if not data:  # the host closed the socket: the supervisor is done with us
            return False
        try:
            message = msgpack.unpackb(data)
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 4:
                raise ValueError("a spawn request carries exactly four descriptors")
            if not isinstance(message, list) or message[:1] != [SPAWN]:
                raise ValueError(f"unknown request {message!r:.80}")
            self.spawn(fds, list(message[1]))
        except Exception as exc:
            self.send([FAILED, f"{type(exc).__name__}: {exc}"])
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def spawn(self, fds: list[int], env: list[list[str]]) -> None:
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.fork()
        except BaseException:
            os.close(status_r)
            os.close(status_w)
            raise
        if pid == 0:  # the child never returns from here
            _become_worker(fds, env, self.pid)
            os._exit(EXIT_CHILD_SETUP)  # pragma: no cover
        # Our own unreaped child: pidfd_open cannot name another process.
        pidfd = os.pidfd_open(pid)
        child = _Child(pid, pidfd, status_w)
        self.by_pidfd[pidfd] = child
        self.by_status[status_w] = child
        self.poller.register(pidfd, select.POLLIN)
        self.poller.register(status_w, 0)  # POLLERR once the host closes its end
        try:
            # The host gets its own pidfd from us: opened before the child can be reaped,
            # it names this process for good (pidfd_open(pid) in the host could race a
            # child that dies at once and a recycled pid).
            self.send([SPAWNED, pid], [status_r, pidfd])
        finally:
            os.close(status_r)

    # -- children ----------------------------------------------------------------------------
    def on_exit(self, child: _Child) -> None:
        self.poller.unregister(child.pidfd)
        del self.by_pidfd[child.pidfd]
        try:
            returncode = _returncode(child.pidfd, 0)
        except ChildProcessError:  # pragma: no cover - only we reap our children
            returncode = -signal.SIGKILL
        os.close(child.pidfd)
        if not child.abandoned:
            self.poller.unregister(child.status_w)
            del self.by_status[child.status_w]
            try:
                os.write(child.status_w, STATUS.pack(returncode))
            except OSError:
                pass  # the host closed its end meanwhile: it no longer asks
            os.close(child.status_w)

    def on_released(self, child: _Child) -> None:
        # The host closed the status pipe of a live worker (it gave up on the start):
        # nothing may run unwatched. on_exit reaps it.
        self.poller.unregister(child.status_w)
        del self.by_status[child.status_w]
        os.close(child.status_w)
        child.abandoned = True
        try:
            signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
        except OSError:
            pass


def serve(args: list[str]) -> None:
    """The zygote's entry point: `args` are [socket fd, host pid]."""
    sock_fd, host = int(args[0]), int(args[1])
    # The same hygiene a worker applies: die with the supervisor, hold only our socket.
    hygiene.die_with_parent(host)
    hygiene.close_inherited_fds({0, 1, 2, sock_fd})
    sock = socket.socket(fileno=sock_fd)
    _warm_up()
    gc.collect()
    gc.freeze()  # everything so far is shared with every child; their collector skips it
    zygote = _Zygote(sock)
    zygote.send([READY, zygote.pid])
    zygote.run()
    # The supervisor is gone or closed us: our children die with us (PR_SET_PDEATHSIG).
    os._exit(0)
