"""Host side: the watchdog — samples every worker with psutil and kills the ones over a limit.

One task samples all workers on an interval (`Supervisor(watchdog_interval=)`, 1 s by
default). A sample is a handful of cheap /proc reads taken under `Process.oneshot()`: RSS,
CPU times, threads and open descriptors, about 70 µs per worker all told, so 100 workers
cost about 0.7 % of one core (benchmarks/watchdog_cost.py). USS (`memory_full_info`, which
walks smaps_rollup, ~190 µs) is read at a slower cadence. (The data folder's size,
`Limits.data_mb`, is watched by `_datadir.release_after_exit`, which walks it with openat2.)

A breach kills the worker's whole process group (`WorkerConnection.kill`) with a
`LimitExceeded(module, limit, observed, threshold)` that every pending call receives and
that the exit record keeps (`ExitInfo.limit`, `ModuleStats.last_exit_cause`).

Liveness and progress are probed per module by `supervise_health` (one task per worker):
a ping answered by the worker's control thread says it is alive even while module code is
busy; a ping answered by its event loop says it is making progress. A worker that is dead
to the control channel, or whose loop is stuck past `Limits.stall_timeout`, has its Python
stacks captured (attached to the error and logged) and is then killed as unresponsive.
A module in debug mode (`handle.debug = True`) skips the health probes and the CPU-percent
check, so its author can sit in a debugger; hard limits (memory, threads, fds) still hold.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import psutil

from .errors import LimitExceeded, WorkerCrashed

if TYPE_CHECKING:
    from ._handle import ModuleHandle
    from ._limits import Limits
    from ._supervisor import Supervisor
    from ._worker import WorkerConnection

__all__ = ["Sample", "Watchdog", "capture_stacks_shared", "supervise_health"]

_log = logging.getLogger("plexisandbox.watchdog")
_MIB = 1024 * 1024
_FULL_EVERY = 30  # USS (memory_full_info: ~190 µs, it walks smaps) every N samples
_STACKS_FRESH = 1.0  # seconds a captured stack dump is reused by concurrent timeouts


@dataclass(frozen=True)
class Sample:
    """One watchdog reading of a worker process (the latest is on `ModuleStats`)."""

    at: float  # time.monotonic()
    rss_bytes: int
    uss_bytes: int | None
    cpu_seconds: float
    #: Average over the last `Limits.cpu_window` seconds (or since the first sample, while
    #: the window is not yet covered), percent of one core.
    cpu_percent: float | None
    threads: int
    open_fds: int


class _Track:
    """Per-worker sampler state."""

    __slots__ = ("cpu", "proc", "ticks", "uss")

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.cpu: deque[tuple[float, float]] = deque()
        self.uss: int | None = None
        self.ticks = 0


class Watchdog:
    """Samples every running worker of a supervisor and enforces its `Limits`.

    `cpu_seconds` and `rounds` count what the sampler itself has cost (CPU time of the
    sampling thread), so its overhead can be reported.
    """

    def __init__(self, supervisor: Supervisor, *, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval!r}")
        self._sup = supervisor
        self.interval = interval
        self._tracks: weakref.WeakKeyDictionary[WorkerConnection, _Track] = (
            weakref.WeakKeyDictionary()
        )
        self._latest: weakref.WeakKeyDictionary[WorkerConnection, Sample] = (
            weakref.WeakKeyDictionary()
        )
        self.cpu_seconds = 0.0
        self.rounds = 0
        self.kills = 0

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Sample on the interval until cancelled (the supervisor's task group owns it)."""
        task_status.started()
        while True:
            await anyio.sleep(self.interval)
            try:
                self.sample_all()
            except Exception:  # a sampler bug must not take the supervisor down with it
                _log.exception("watchdog round failed; sampling continues")

    def latest(self, conn: WorkerConnection | None) -> Sample | None:
        """The most recent sample of `conn`'s process, if it has been sampled."""
        return self._latest.get(conn) if conn is not None else None

    def sample_all(self) -> None:
        """One round: sample every live worker, enforce its limits. Never raises."""
        started = time.thread_time()
        for handle in list(self._sup._modules.values()):
            conn = handle._conn
            if conn is None or not conn.alive or conn._kill_cause is not None:
                continue
            try:
                sample = self._sample(handle, conn)
            except (psutil.Error, OSError):
                # Gone or a zombie between the check and the read: the exit watcher reports it.
                continue
            self._latest[conn] = sample
            self._enforce(handle, conn, sample)
        self.rounds += 1
        self.cpu_seconds += time.thread_time() - started

    def _sample(self, handle: ModuleHandle, conn: WorkerConnection) -> Sample:
        track = self._tracks.get(conn)
        if track is None:
            # Safe against pid reuse: the connection has not reaped its child yet (alive),
            # so the pid still names our worker, or its zombie.
            track = self._tracks[conn] = _Track(conn.pid)
        proc = track.proc
        now = time.monotonic()
        with proc.oneshot():
            rss = proc.memory_info().rss
            times = proc.cpu_times()
            threads = proc.num_threads()
            fds = proc.num_fds()
        if track.ticks % _FULL_EVERY == 0:
            try:
                track.uss = proc.memory_full_info().uss
            except psutil.AccessDenied:
                track.uss = None
        track.ticks += 1
        cpu = times.user + times.system
        window = handle.limits.cpu_window
        track.cpu.append((now, cpu))
        # Keep the newest reading that is at least a window old as the base of the average.
        while len(track.cpu) > 2 and now - track.cpu[1][0] >= window:
            track.cpu.popleft()
        base_at, base_cpu = track.cpu[0]
        percent = (cpu - base_cpu) / (now - base_at) * 100 if now > base_at else None
        return Sample(now, rss, track.uss, cpu, percent, threads, fds)

    def _enforce(self, handle: ModuleHandle, conn: WorkerConnection, sample: Sample) -> None:
        breach = check_limits(handle.limits, sample, self._tracks[conn], debug=handle.debug)
        if breach is None:
            return
        limit, observed, threshold, hint = breach
        error = LimitExceeded(
            module=handle.name, limit=limit, observed=observed, threshold=threshold, hint=hint
        )
        self.kills += 1
        _log.error(
            "module %s: worker pid %d over its %s limit (observed %s, threshold %s); killing "
            "its process group",
            handle.name,
            conn.pid,
            limit,
            observed,
            threshold,
        )
        conn.kill("limit", f"{limit}: observed {observed}, threshold {threshold}", error)


def check_limits(
    limits: Limits, sample: Sample, track: _Track | None = None, *, debug: bool = False
) -> tuple[str, float | int, float | int, str] | None:
    """The first limit `sample` breaches, as (limit, observed, threshold, hint), or None."""
    rss_mb = round(sample.rss_bytes / _MIB, 1)
    if rss_mb > limits.memory_mb:
        return (
            "memory_mb",
            rss_mb,
            limits.memory_mb,
            f"resident memory {rss_mb:g} MiB > {limits.memory_mb} MiB; raise "
            "Limits(memory_mb=...) if the module needs more",
        )
    if sample.threads > limits.threads:
        return (
            "threads",
            sample.threads,
            limits.threads,
            f"{sample.threads} threads > {limits.threads}; raise Limits(threads=...) if the "
            "module needs more",
        )
    if sample.open_fds >= limits.open_files:
        # RLIMIT_NOFILE stops the count at the limit, so reaching it is exhaustion.
        return (
            "open_files",
            sample.open_fds,
            limits.open_files,
            f"all {limits.open_files} file descriptors in use ({sample.open_fds}); raise "
            "Limits(open_files=...) if the module needs more, or look for a descriptor leak",
        )
    if sample.cpu_seconds > limits.cpu_seconds:
        cpu = round(sample.cpu_seconds, 1)
        return (
            "cpu_seconds",
            cpu,
            limits.cpu_seconds,
            f"{cpu:g} CPU seconds used > {limits.cpu_seconds}; raise Limits(cpu_seconds=...)",
        )
    if (
        not debug
        and limits.cpu_percent > 0
        and sample.cpu_percent is not None
        and track is not None
        and track.cpu
        and sample.at - track.cpu[0][0] >= limits.cpu_window
        and sample.cpu_percent > limits.cpu_percent
    ):
        percent = round(sample.cpu_percent, 1)
        return (
            "cpu_percent",
            percent,
            limits.cpu_percent,
            f"{percent:g}% of a core over {limits.cpu_window:g}s > {limits.cpu_percent:g}%; "
            "raise Limits(cpu_percent=...) or move heavy work off the module",
        )
    return None


# -- stacks ----------------------------------------------------------------------------------
class _SharedCapture:
    __slots__ = ("at", "done", "stacks")

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.done = anyio.Event()
        self.stacks: str | None = None


_captures: weakref.WeakKeyDictionary[WorkerConnection, _SharedCapture] = weakref.WeakKeyDictionary()


async def capture_stacks_shared(
    conn: WorkerConnection, timeout: float = 1.0
) -> tuple[str | None, bool]:
    """The worker's Python stacks, captured once for many concurrent askers.

    When 500 calls time out together they share one dump taken within the last second.
    Returns (stacks or None, whether this caller took the capture — and so should log it).
    """
    shared = _captures.get(conn)
    if shared is not None and time.monotonic() - shared.at < _STACKS_FRESH:
        await shared.done.wait()
        return shared.stacks, False
    shared = _captures[conn] = _SharedCapture()
    try:
        shared.stacks = await conn.capture_stacks(timeout)
    finally:
        shared.done.set()
    return shared.stacks, True


# -- health ----------------------------------------------------------------------------------
async def supervise_health(handle: ModuleHandle, conn: WorkerConnection) -> None:
    """Probe one worker's liveness and progress until it ends; kill it when unresponsive.

    Liveness: a ping over the control pipe, answered by the worker's control thread even
    while module code keeps the event loop busy. `Limits.ping_failures` consecutive misses
    mean the process is wedged (or holds the GIL in a C loop). Progress: a ping through the
    data channel, answered by the event loop, which also ACKs every request on receipt; no
    answer for `Limits.stall_timeout` means module code blocks the loop.
    """
    limits = handle.limits
    misses = 0
    last_progress = time.monotonic()
    while conn.alive:
        await anyio.sleep(limits.ping_interval)
        if not conn.alive or conn._kill_cause is not None:
            return
        if handle.debug:
            misses, last_progress = 0, time.monotonic()
            continue
        if await conn.ping(limits.ping_timeout, control=True):
            misses = 0
        else:
            misses += 1
            if misses >= limits.ping_failures:
                await _kill_unresponsive(
                    handle,
                    conn,
                    f"missed {misses} control pings ({limits.ping_timeout:g}s each)",
                )
                return
            continue  # a worker not answering the control channel will not answer the loop
        if await conn.ping(limits.ping_timeout):
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress >= limits.stall_timeout:
            await _kill_unresponsive(
                handle,
                conn,
                f"event loop made no progress for {time.monotonic() - last_progress:.1f}s "
                f"(Limits.stall_timeout={limits.stall_timeout:g})",
            )
            return


async def _kill_unresponsive(handle: ModuleHandle, conn: WorkerConnection, reason: str) -> None:
    if handle.debug or not conn.alive:
        return
    stacks, _ = await capture_stacks_shared(conn, min(handle.limits.ping_timeout, 2.0))
    _log.error(
        "module %s: worker pid %d is unresponsive (%s); killing it. Python stacks:\n%s",
        handle.name,
        conn.pid,
        reason,
        stacks or "(unavailable: the control thread did not answer either)",
    )
    conn.kill(
        "unresponsive",
        reason,
        WorkerCrashed(
            module=handle.name,
            reason=f"unresponsive: {reason}",
            stderr_tail=tuple(conn.output_tail),
            cause="unresponsive",
            stacks=stacks,
        ),
    )
