"""Worker side: the zygote — a clean pre-started interpreter that forks one worker per module.

The host starts it exactly like a worker (`python -I -S -B -c BOOTSTRAP`, an allow-listed
environment, its own session, stdin from /dev/null, cwd `/`), see `plexisandbox._zygote`. It
imports the worker runtime and nothing else (`worker.main` and everything it pulls in: asyncio,
msgpack, the confinement modules), calls `gc.freeze()` so the children's collector never
writes to the pages they share, and then serves requests on one `AF_UNIX` socketpair
(SOCK_SEQPACKET: one message per request, never a pathname socket).

Protocol (msgpack bodies; SCM_RIGHTS carries descriptors):

    zygote → host   [READY, pid]                                   once, after gc.freeze()
    host → zygote   [SPAWN, [[key, value], ...], {"paths": [...]}]  + 4 fds   data in,
                                                                    data out, control in, output
    zygote → host   [SPAWNED, pid]                + 2 fds          the child's status pipe
                                                                    and a pidfd for it
                    [FAILED, "why"]

("paths": the policy's Landlock paths, on a root host; optional.)

Spare children (Android's "unspecialized app process" pool): the zygote keeps one child
forked *ahead* of the next request. The spare has already done everything that does not
depend on the module — its own session, the parent-death signal, every inherited descriptor
closed, its event loop made — and blocks on its own socketpair to the zygote. A SPAWN hands it
the channel's descriptors (`_specialize`), and it runs the very same `run()` a launched worker
runs: handshake, this module's own confinement (uid, netns, Landlock, seccomp), serve. The
fork (~0.7 ms of page-table copying here, and as much again before the child runs) is off the
start-up path; the zygote forks the next spare once the new worker has had time to start
(`_REFILL_DELAY`). Before it waits, the spare rehearses a worker's start on made-up data
(`rehearsal.py`): the ~800 pages a start writes to are copied then, not on the start-up path.

Shared namespaces (root host): at start the zygote makes one empty network namespace, and per
distinct set of "paths" one mount namespace masked for them (`namespaces.mask_untraversable`,
cached); each worker joins them with setns() instead of creating its own (docs/security.md
argues why this confines as much). They are made by a short-lived helper child, so the zygote
itself never leaves the host's namespaces, and handed to each worker with its channel; the
worker closes them in `confine.apply()`.

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

import asyncio
import ctypes
import gc
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field

import msgpack

# The worker runtime, imported once here so every child starts with it loaded and frozen.
from . import confine, hygiene, landlock, namespaces, rehearsal, rlimits, seccomp  # noqa: F401
from . import main as worker_main
from .logrelay import line_buffered_output

__all__ = ["EXIT_CHILD_SETUP", "FAILED", "READY", "SPARE_NAME", "SPAWN", "SPAWNED", "serve"]

READY, SPAWN, SPAWNED, FAILED = "ready", "spawn", "spawned", "failed"
STATUS = struct.Struct("=i")
EXIT_CHILD_SETUP = 72  # the forked child could not become a worker (before HELLO)
_MAX_MESSAGE = 1 << 16
_FD_SPACE = socket.CMSG_SPACE(4 * 4)  # room for exactly the four descriptors of a spawn
_SPARE_FD_SPACE = socket.CMSG_SPACE(6 * 4)  # the four, and two namespaces
_MOUNT_CACHE = 8  # masked mount namespaces kept (one per distinct set of paths)
#: Seconds after a spare is handed out before the next one is forked. Forking at once puts
#: the zygote's page-table copy and the spare's preparation on the two CPUs just when the new
#: worker and the host run its handshake (measured: +0.8 ms to HELLO on 2 vCPUs); a worker's
#: start takes a few ms. A request that finds no spare forks inline, as before spares.
_REFILL_DELAY = 0.02
#: The `comm` of a spare child while it waits for a request.
SPARE_NAME = b"plexisbx-spare"
_PR_SET_NAME, _PR_GET_NAME = 15, 16
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class _Child:
    pid: int
    pidfd: int
    status_w: int
    abandoned: bool = False
    #: While a spare: the zygote's end of its socketpair and the status pipe's read end.
    sock: socket.socket | None = None
    status_r: int = -1


@dataclass
class _MountNs:
    fd: int
    masked: list[str]
    #: (path, st_dev, st_ino) of each path bound into the mask: a replaced folder (rm -rf and
    #: copy again) would still show the old one through its bind mount, so it is rebuilt.
    bound: list[tuple[str, int, int]] = field(default_factory=list)


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
    # What install_log_relay() sets on stdout/stderr, set once: their fds are replaced in
    # each worker (dup2), the text wrappers stay.
    line_buffered_output()
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


def _spare_main(sock_fd: int, zygote: int) -> None:
    """In a spare child, forked ahead of the request it will serve: prepare, then wait."""
    try:
        os.setsid()  # own session and process group: killpg(pid) reaches exactly this worker
        hygiene.die_with_parent(zygote)
        # Everything of the zygote's (its socket to the host, other children's pidfds and
        # pipes, namespace descriptors): the spare holds stdio and its own socket only.
        hygiene.close_inherited_fds({0, 1, 2, sock_fd})
        # Named while it waits, so `ps` (and a test counting a host's descendants) can tell a
        # spare from a worker; the worker takes the zygote's name back (_specialize).
        name = _prctl_name(_PR_GET_NAME)
        _prctl_name(_PR_SET_NAME, SPARE_NAME)
        # The event loop's epoll fd and self-pipe, made now rather than on the start-up path.
        loop = asyncio.new_event_loop()
        sock = socket.socket(fileno=sock_fd)
        # A worker's start-up once on made-up data: the pages it writes are copied now, not
        # on the start-up path (rehearsal.py); it stops as soon as a request is waiting.
        rehearsal.rehearse(loop, lambda: bool(select.select([sock_fd], [], [], 0)[0]))
        data, ancdata, flags, _ = sock.recvmsg(_MAX_MESSAGE, _SPARE_FD_SPACE)
        sock.close()
    except BaseException:
        traceback.print_exc()
        os._exit(EXIT_CHILD_SETUP)
    fds = _received_fds(ancdata)
    if not data:  # the zygote is done with us before we were needed
        os._exit(0)
    _specialize(data, flags, fds, loop, name)


def _specialize(
    data: bytes, flags: int, fds: list[int], loop: asyncio.AbstractEventLoop, name: bytes
) -> None:
    """Become the worker the host asked for: its channel, output, environment, namespaces."""
    try:
        _prctl_name(_PR_SET_NAME, name)
        env, meta = msgpack.unpackb(data)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 4 + len(meta["extra"]):
            raise ValueError("the zygote's hand-over lost descriptors")
        fd_in, fd_out, fd_ctl, fd_output = fds[:4]
        extra = dict(zip(meta["extra"], fds[4:], strict=True))
        os.dup2(fd_output, 1)
        os.dup2(fd_output, 2)
        os.close(fd_output)
        # The policy's environment (os.environ writes through to the C environ), as a
        # launched worker has it from exec (dill's import, before confinement, reads TMPDIR).
        # What glibc reads once at start-up (MALLOC_ARENA_MAX) came from the zygote's own
        # environment, which is the policy's baseline allow-list.
        wanted = {str(k): str(v) for k, v in env}
        if os.environ != wanted:  # mostly equal: the zygote has the baseline allow-list
            os.environ.clear()
            os.environ.update(wanted)
        sys.argv[1:] = []
        prepared = confine.Prepared(
            netns=extra.get("netns"),
            mntns=extra.get("mntns"),
            mnt_paths=list(meta.get("mnt_paths") or []),
            masked=list(meta.get("masked") or []),
            mnt_checked=bool(meta.get("mnt_checked")),
        )
    except BaseException:
        traceback.print_exc()
        os._exit(EXIT_CHILD_SETUP)
    try:
        # The handshake, this module's own confinement (uid, netns, Landlock, seccomp), serve.
        worker_main.run(fd_in, fd_out, fd_ctl, prepared=prepared, loop=loop)
    except BaseException:
        traceback.print_exc()
    os._exit(1)  # what a plain worker's interpreter exits with on an uncaught exception


def _prctl_name(option: int, name: bytes = b"") -> bytes:
    """PR_SET_NAME / PR_GET_NAME (the 15-byte `comm` of /proc/<pid>/comm)."""
    buf = ctypes.create_string_buffer(name, 16)
    if _libc.prctl(option, buf, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")
    return buf.value


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    return [
        fd
        for level, kind, payload in ancdata
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        for fd in struct.unpack(f"={len(payload) // 4}i", payload[: len(payload) // 4 * 4])
    ]


def _returncode(pidfd: int, options: int) -> int:
    result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | options)
    if result is None:  # pragma: no cover - only with WNOHANG
        raise ChildProcessError("child not exited")
    if result.si_code == os.CLD_EXITED:
        return int(result.si_status)
    return -int(result.si_status)  # CLD_KILLED / CLD_DUMPED, as Popen.returncode says it


def _make_namespace(kind: str, paths: list[str] | None = None) -> tuple[int | None, list[str]]:
    """A namespace made by a helper child, so the zygote never leaves the host's own:
    kind "net" — a new, empty network namespace; "mnt" — a mount namespace with the
    untraversable ancestors of `paths` masked (None when nothing needs masking).
    Returns (a descriptor for it, the masked folders).

    Raises:
        OSError: the helper could not make it (not root, no namespaces here).
    """
    result_r, result_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except BaseException:
        for fd in (result_r, result_w, hold_r, hold_w):
            os.close(fd)
        raise
    if pid == 0:  # the helper: make it, say so, and live until the zygote holds it
        try:
            os.close(hold_w)  # or the read below would never see the zygote close its end
            os.close(result_r)
            if kind == "net":
                namespaces.enter_netns()
                answer: list[object] = [True, []]
            else:
                answer = [True, namespaces.mask_untraversable(list(paths or []))]
        except BaseException as exc:
            answer = [False, f"{type(exc).__name__}: {exc}"]
        try:
            os.write(result_w, msgpack.packb(answer))
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(result_w)
    os.close(hold_r)
    try:
        data = os.read(result_r, _MAX_MESSAGE)
        ok, detail = msgpack.unpackb(data) if data else (False, "the helper died")
        if not ok:
            raise OSError(f"cannot make a {kind} namespace: {detail}")
        if kind == "mnt" and not detail:
            return None, []  # nothing to mask: the helper stayed in the host's namespace
        # Our own unreaped child: its /proc entry cannot be another process's.
        return os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC), list(detail)
    finally:
        os.close(hold_w)
        os.close(result_r)
        os.waitpid(pid, 0)


class _Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.poller = select.poll()
        self.by_pidfd: dict[int, _Child] = {}
        self.by_status: dict[int, _Child] = {}
        self.spare: _Child | None = None
        self.spares_lost = 0  # spares that died unused, in a row: stop keeping one at 3
        self.handed_out = 0.0  # when the last spare became a worker
        #: The empty network namespace every worker without network joins (root host).
        self.netns: int | None = None
        self.mounts: OrderedDict[tuple[str, ...], _MountNs | None] = OrderedDict()

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
            timeout: float | None = None
            if self.spare is None and self.spares_lost < 3:
                wait = self.handed_out + _REFILL_DELAY - time.monotonic()
                if wait > 0:
                    timeout = wait * 1000
                else:
                    try:
                        self.spare = self.fork_spare()
                    except OSError:
                        pass  # out of processes or fds: the next request forks inline
            try:
                events = self.poller.poll(timeout)
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
        fds = _received_fds(ancdata)
        if not data:  # the host closed the socket: the supervisor is done with us
            return False
        try:
            message = msgpack.unpackb(data)
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 4:
                raise ValueError("a spawn request carries exactly four descriptors")
            if not isinstance(message, list) or message[:1] != [SPAWN]:
                raise ValueError(f"unknown request {message!r:.80}")
            options = message[2] if len(message) > 2 and isinstance(message[2], dict) else {}
            self.spawn(fds, list(message[1]), options)
        except Exception as exc:
            self.send([FAILED, f"{type(exc).__name__}: {exc}"])
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def fork_spare(self) -> _Child:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.fork()
        except BaseException:
            for fd in (status_r, status_w):
                os.close(fd)
            parent.close()
            child.close()
            raise
        if pid == 0:  # the spare never returns from here
            self.forget()
            _spare_main(child.fileno(), self.pid)
            os._exit(EXIT_CHILD_SETUP)  # pragma: no cover
        child.close()
        # Our own unreaped child: pidfd_open cannot name another process.
        pidfd = os.pidfd_open(pid)
        spare = _Child(pid, pidfd, status_w, sock=parent, status_r=status_r)
        self.by_pidfd[pidfd] = spare
        self.poller.register(pidfd, select.POLLIN)
        return spare

    def forget(self) -> None:
        """In a new child: drop what the zygote knows of other workers. This object stays
        reachable from the child's stack (module code can walk its frames up to
        `fork_spare`): its tables name every live worker's pid and every module's paths,
        their folders and data folders among them."""
        self.by_pidfd.clear()
        self.by_status.clear()
        self.mounts.clear()
        self.spare = None

    def namespaces_for(self, options: dict[str, object]) -> tuple[dict[str, object], list[int]]:
        """What a worker with these options joins: (hand-over metadata, descriptors)."""
        extra: list[str] = []
        meta: dict[str, object] = {"extra": extra}
        fds: list[int] = []
        if self.netns is not None:
            extra.append("netns")
            fds.append(self.netns)
        paths = options.get("paths")
        if os.geteuid() == 0 and isinstance(paths, list) and all(isinstance(p, str) for p in paths):
            try:
                mount = self.mount_for(paths)
            except OSError:
                return meta, fds  # the worker masks its own, as it would without a zygote
            meta.update(mnt_checked=True, mnt_paths=paths)
            if mount is not None:
                meta["masked"] = mount.masked
                extra.append("mntns")
                fds.append(mount.fd)
        return meta, fds

    def mount_for(self, paths: list[str]) -> _MountNs | None:
        key = tuple(paths)
        if key in self.mounts:
            mount = self.mounts[key]
            if mount is None or all(_identity(bound[0]) == bound for bound in mount.bound):
                self.mounts.move_to_end(key)
                return mount
            del self.mounts[key]
            os.close(mount.fd)
        fd, masked = _make_namespace("mnt", paths)
        mount = None
        if fd is not None:
            bound = [p for p in paths if any(p.startswith(a.rstrip("/") + "/") for a in masked)]
            mount = _MountNs(fd, masked, [_identity(p) for p in bound])
        self.mounts[key] = mount
        while len(self.mounts) > _MOUNT_CACHE:
            _, old = self.mounts.popitem(last=False)
            if old is not None:
                os.close(old.fd)
        return mount

    def spawn(self, fds: list[int], env: list[list[str]], options: dict[str, object]) -> None:
        meta, extra = self.namespaces_for(options)
        body = msgpack.packb([env, meta])
        rights = struct.pack(f"={len(fds) + len(extra)}i", *fds, *extra)
        for attempt in (1, 2):
            child, self.spare = self.spare or self.fork_spare(), None
            assert child.sock is not None
            try:
                child.sock.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
                break
            except OSError:  # the spare died meanwhile (its exit is reaped by on_exit)
                if attempt == 2:
                    raise
            finally:
                child.sock.close()
                child.sock = None
        status_r, child.status_r = child.status_r, -1
        self.spares_lost = 0
        self.handed_out = time.monotonic()
        self.by_status[child.status_w] = child
        self.poller.register(child.status_w, 0)  # POLLERR once the host closes its end
        try:
            # The host gets its own pidfd from us: opened before the child can be reaped,
            # it names this process for good (pidfd_open(pid) in the host could race a
            # child that dies at once and a recycled pid).
            self.send([SPAWNED, child.pid], [status_r, child.pidfd])
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
        if child.sock is not None or child.status_r >= 0:  # a spare nobody asked for yet
            if self.spare is child:
                self.spare = None
                self.spares_lost += 1
            if child.sock is not None:
                child.sock.close()
            for fd in (child.status_r, child.status_w):
                if fd >= 0:
                    os.close(fd)
            return
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


def _identity(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return path, -1, -1
    return path, st.st_dev, st.st_ino


def serve(args: list[str]) -> None:
    """The zygote's entry point: `args` are [socket fd, host pid]."""
    sock_fd, host = int(args[0]), int(args[1])
    # The same hygiene a worker applies: die with the supervisor, hold only our socket.
    hygiene.die_with_parent(host)
    hygiene.close_inherited_fds({0, 1, 2, sock_fd})
    sock = socket.socket(fileno=sock_fd)
    _warm_up()
    # The import system's directory caches (every sys.path folder listed, every name cached)
    # are dropped by each worker after confinement (worker.main): freeing them in every child
    # writes to ~180 pages it would otherwise share (copy-on-write). Drop them once, here.
    sys.path_importer_cache.clear()
    zygote = _Zygote(sock)
    if os.geteuid() == 0:
        try:
            zygote.netns, _ = _make_namespace("net")
        except OSError:
            pass  # each worker makes its own (unshare), as without a zygote
    gc.collect()
    gc.freeze()  # everything so far is shared with every child; their collector skips it
    zygote.send([READY, zygote.pid])
    zygote.run()
    # The supervisor is gone or closed us: our children die with us (PR_SET_PDEATHSIG).
    os._exit(0)
