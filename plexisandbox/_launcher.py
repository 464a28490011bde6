"""Host side: start a worker as a fresh interpreter with only the channel's descriptors.

Never a fork of the host: `subprocess.Popen` execs `python -I -S -B` (isolated mode: no
PYTHON* variables, no user site, no cwd on sys.path; no site import; no bytecode writes), with
an environment built from the policy's allow-list, stdin from /dev/null, stdout and stderr to a
pipe the host drains, its own session, and cwd `/`. The host's `__main__` is never imported.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import plexisandbox

__all__ = [
    "LaunchedWorker",
    "WorkerProcess",
    "bootstrap_code",
    "channel_pipes",
    "ensure_bytecode",
    "launch_worker",
    "start_interpreter",
    "worker_package_dir",
    "write_ahead",
]


def bootstrap_code(module: str, function: str, nargs: int) -> str:
    """The `-c` program of a fresh interpreter: put the host's library paths on sys.path, load
    the worker package from its folder by path (it may be installed or in a source checkout),
    then call `plexisandbox_worker.<module>.<function>(argv[2:2 + nargs])`. The argv is
    `[-c, package folder, *nargs arguments, *library paths]` (see `start_interpreter`)."""
    end = 2 + nargs
    return (
        f"import sys;a=sys.argv;sys.path[:0]=a[{end}:];import importlib.util as u;"
        "s=u.spec_from_file_location('plexisandbox_worker',a[1]+'/__init__.py',"
        "submodule_search_locations=[a[1]]);m=u.module_from_spec(s);sys.modules[s.name]=m;"
        f"s.loader.exec_module(m);from plexisandbox_worker.{module} import {function};"
        f"{function}(a[2:{end}])"
    )


_BOOTSTRAP = bootstrap_code("main", "main", 4)


def start_interpreter(
    bootstrap: str,
    args: Sequence[str],
    *,
    pass_fds: Sequence[int],
    output: int,
    env: Mapping[str, str],
) -> subprocess.Popen[bytes]:
    """Exec a fresh `python -I -S -B` running `bootstrap` (see `bootstrap_code`), never a fork
    of the host: isolated mode, no site, no bytecode writes; stdin from /dev/null, stdout and
    stderr to `output`, only `pass_fds` inherited, its own session, cwd `/`, exactly `env`.
    Workers and the zygote both start here, so they start alike.

    Raises:
        OSError: the interpreter could not be started (fd or process limits).
    """
    ensure_bytecode()
    argv = [
        sys.executable,
        "-I",
        "-S",
        "-B",
        "-c",
        bootstrap,
        worker_package_dir(),
        *args,
        *library_paths(),
    ]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        pass_fds=tuple(pass_fds),
        close_fds=True,
        start_new_session=True,
        env=dict(env),
        cwd="/",
    )


@cache
def worker_package_dir() -> str:
    """The folder of `plexisandbox_worker`, installed or in a source checkout (`worker/`)."""
    spec = importlib.util.find_spec("plexisandbox_worker")
    if spec is not None and spec.submodule_search_locations:
        return os.path.realpath(next(iter(spec.submodule_search_locations)))
    here = os.path.dirname(os.path.dirname(os.path.realpath(plexisandbox.__file__)))
    candidate = os.path.join(here, "worker")
    if os.path.isfile(os.path.join(candidate, "main.py")):
        return candidate
    raise RuntimeError("cannot find the plexisandbox_worker package; reinstall plexisandbox")


@cache
def ensure_bytecode() -> None:
    """Write fresh `.pyc` files for the worker package and `plexisandbox`, once per host.

    A worker runs with `-B` (it never writes bytecode: it could not, and must not), so a
    module whose `.pyc` is missing or stale is compiled from source in every worker — ~10 ms
    per start for our own modules here. The host is trusted and compiles trusted source, as
    any import of its own would (pip does the same at install). A read-only install is left
    as it is.
    """
    import compileall

    here = os.path.dirname(os.path.realpath(plexisandbox.__file__))
    for folder in (worker_package_dir(), here):
        try:
            compileall.compile_dir(folder, maxlevels=2, quiet=2)
        except OSError:
            pass


@cache
def library_paths() -> tuple[str, ...]:
    """sys.path entries the worker needs: ours first, then the host's absolute entries."""
    ours = os.path.dirname(os.path.dirname(os.path.realpath(plexisandbox.__file__)))
    paths = [ours]
    for entry in sys.path:
        if entry and os.path.isabs(entry) and os.path.isdir(entry) and entry not in paths:
            paths.append(entry)
    return tuple(paths)


class WorkerProcess(Protocol):
    """What the host needs of a worker's process: `subprocess.Popen` for a launched worker,
    `plexisandbox._zygote.ZygoteChild` for one forked by the zygote. `returncode` follows
    Popen: the exit code, or minus the signal that ended it."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class LaunchedWorker:
    """The host's ends of a freshly started worker."""

    process: WorkerProcess
    pidfd: int
    data_read: int  # worker -> host frames
    data_write: int  # host -> worker frames
    ctl_write: int  # host -> worker control frames
    output_read: int  # worker stdout + stderr
    #: Readable once `process.poll()` knows the exit status: the pidfd for a child of the
    #: host's own; for a zygote's child, the pipe the zygote writes the status to (closing it
    #: lets the zygote reap the child). -1: the pidfd.
    exit_fd: int = -1
    #: The tail of the first frame (`write_ahead`) that did not fit into the pipe: the
    #: host's connection sends it before anything else.
    unsent: bytes = b""

    def __post_init__(self) -> None:
        if self.exit_fd < 0:
            self.exit_fd = self.pidfd

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        fds = (self.data_read, self.data_write, self.ctl_write, self.output_read, self.pidfd)
        for fd in (*fds, *((self.exit_fd,) if self.exit_fd != self.pidfd else ())):
            try:
                os.close(fd)
            except OSError:
                pass


def channel_pipes() -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A new worker's four pipes: (the worker's ends: data in, data out, control in, output),
    (the host's ends: data out, data in, control out, output in — non-blocking)."""
    made: list[int] = []
    try:  # out of fds half-way: close what was made, nothing leaks
        for _ in range(4):
            made.extend(os.pipe2(os.O_CLOEXEC))
    except OSError:
        for fd in made:
            os.close(fd)
        raise
    to_worker_r, to_worker_w, from_worker_r, from_worker_w, ctl_r, ctl_w, out_r, out_w = made
    for fd in (to_worker_w, from_worker_r, ctl_w, out_r):
        os.set_blocking(fd, False)
    return (to_worker_r, from_worker_w, ctl_r, out_w), (to_worker_w, from_worker_r, ctl_w, out_r)


def write_ahead(fd: int, frame: bytes) -> bytes:
    """Put `frame` into a new worker's empty, non-blocking input pipe before the worker runs;
    return the part that did not fit (sent later, in order, by the host's connection).

    The worker reads it only after it has spoken (HELLO): writing BOOT ahead saves the round
    trip in which the host would wait for HELLO before sending it (docs/protocol.md).
    """
    if not frame:
        return b""
    try:
        written = os.write(fd, frame)
    except BlockingIOError:
        written = 0
    return frame[written:]


def launch_worker(env: Mapping[str, str], first: bytes = b"") -> LaunchedWorker:
    """Start one worker; it speaks first (HELLO) on `data_read`. `first`: a frame put into its
    input ahead (`write_ahead`).

    Raises:
        OSError: the interpreter could not be started (fd or process limits).
    """
    child_ends, (to_worker_w, from_worker_r, ctl_w, out_r) = channel_pipes()
    to_worker_r, from_worker_w, ctl_r, out_w = child_ends
    unsent = write_ahead(to_worker_w, first)
    try:
        process = start_interpreter(
            _BOOTSTRAP,
            [str(to_worker_r), str(from_worker_w), str(ctl_r), str(os.getpid())],
            pass_fds=(to_worker_r, from_worker_w, ctl_r),
            output=out_w,
            env=env,
        )
    except BaseException:
        for fd in (*child_ends, to_worker_w, from_worker_r, ctl_w, out_r):
            os.close(fd)
        raise
    for fd in child_ends:
        os.close(fd)
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:  # no fd left for it: don't leave a worker nobody can watch
        process.kill()
        process.wait()
        for fd in (to_worker_w, from_worker_r, ctl_w, out_r):
            os.close(fd)
        raise
    return LaunchedWorker(
        process=process,
        pidfd=pidfd,
        data_read=from_worker_r,
        data_write=to_worker_w,
        ctl_write=ctl_w,
        output_read=out_r,
        unsent=unsent,
    )
