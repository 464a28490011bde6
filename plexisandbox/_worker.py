"""Host side: one worker process seen from the supervisor — channel, calls, output, exit.

Everything read here comes from a process that may be hostile. Frames are parsed by the
bounded `FrameDecoder` and shape-checked; any violation kills this worker (and only it) with a
`ProtocolViolation` recorded. Every pending call ends when the worker ends: the exit watcher
fails whatever is still waiting with the typed cause of death, so no caller can hang.

I/O is `anyio.wait_readable/wait_writable` plus `os.read/os.write` on non-blocking pipes: the
cheapest path anyio offers on both asyncio and trio (see benchmarks/).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import heapq
import itertools
import logging
import math
import os
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from ._launcher import LaunchedWorker
from ._protocol import (
    DEFAULT_MAX_FRAME,
    HEADER,
    WIRE_VERSION,
    FrameDecoder,
    Op,
    ProtocolError,
    check_shape,
    encode,
)
from .errors import (
    CallTimeout,
    ConfinementUnavailable,
    LimitExceeded,
    ModuleError,
    ProtocolViolation,
    SandboxError,
    WorkerCrashed,
)

__all__ = ["ExitInfo", "WorkerConnection"]

_log = logging.getLogger("plexisandbox")

_MAX_LINE = 2048  # characters of one stdout/stderr line relayed to logging
_TAIL_LINES = 20
_CANCEL_GRACE = 2.0  # seconds a worker has to honour a cancel before it is killed
_EOF_GRACE = 2.0  # seconds between a closed channel and SIGKILL
_TERM_GRACE = 1.0  # seconds between SIGTERM and SIGKILL at the end of a shutdown
_HIGH_WATER = 8 * 1024 * 1024  # queued bytes towards a worker before senders wait


@dataclass(frozen=True)
class ExitInfo:
    """How a worker ended. `cause` is one of: clean, crash, signal, protocol, limit,
    unresponsive, failed_start, killed; `label` refines it for logs and dashboards."""

    cause: str
    exit_code: int | None
    signal: int | None
    reason: str
    at: float
    output_tail: tuple[str, ...]
    #: Which `Limits` field was exceeded (cause "limit"), e.g. "memory_mb", "cpu_seconds".
    limit: str | None = None
    #: Python stacks captured before the worker was killed (cause "unresponsive").
    stacks: str | None = None

    @property
    def label(self) -> str:
        """The classified cause: `clean`, `module_error`, `signal:SIGSEGV`, `cpu_rlimit`,
        `memory_limit`, `watchdog:<limit>`, `protocol`, `unresponsive`, `failed_start`,
        `killed` (the supervisor stopped it)."""
        if self.cause == "limit":
            if self.signal == signal.SIGXCPU and self.limit in (None, "cpu_seconds"):
                return "cpu_rlimit"
            return f"watchdog:{self.limit}" if self.limit else "limit"
        if self.cause == "signal" and self.signal is not None:
            try:
                return f"signal:{signal.Signals(self.signal).name}"
            except ValueError:
                return f"signal:{self.signal}"
        if self.cause == "crash":
            # The worker's own exit codes (plexisandbox_worker.main): 69 protocol, 70
            # confinement, 71 import. A MemoryError that escaped is RLIMIT_AS/RLIMIT_DATA.
            if self.exit_code == 69:
                return "protocol"
            if self.exit_code in (70, 71):
                return "failed_start"
            if any("MemoryError" in line for line in self.output_tail[-5:]):
                return "memory_limit"
            return "module_error"
        return self.cause


_RESULT = int(Op.RESULT)
_PIPE_DEFAULT = 64 * 1024
_PIPE_LARGE = 1024 * 1024
_GROWN_PIPES_MAX = 12  # connections; 24 MiB of pipe capacity at most
_grown_pipes = 0
_BATCH_FRAMES = 16  # frames per write while many calls are sent in one pass


def _output_line(raw: bytes, truncated: bool = False) -> str:
    """One line of a worker's stdout/stderr as the host logs and keeps it."""
    line = clean_text(raw[: _MAX_LINE * 4].decode("utf-8", "replace"))
    if len(line) > _MAX_LINE or truncated or len(raw) > _MAX_LINE * 4:
        line = line[:_MAX_LINE] + " …[line truncated]"
    return line


class _HostCpuBudget:
    """What reading one of a worker's pipes may cost the host: a bucket of host seconds,
    refilled at `share` of a CPU, holding at most `burst`. A module's own CPU limits do not
    see this cost: it can write the same pre-built bytes again and again (16 MiB of tiny
    strings cost the host ~1 s to decode; a pipe of newlines, one log line each) at next to
    no cost to itself. Past the budget the host reads that pipe more slowly — the module's
    writes wait, nothing is dropped — and says so."""

    __slots__ = ("_at", "_burst", "debt", "pauses", "share")

    def __init__(self, share: float, burst: float) -> None:
        self.share = share
        self._burst = burst
        self.debt = 0.0  # host seconds not yet paid back
        self._at = 0.0
        self.pauses = 0

    def charge(self, started: float, now: float) -> float:
        """Add the host time from `started` to `now`; return how long to stop reading (0:
        read on)."""
        self.debt = max(0.0, self.debt - (started - self._at) * self.share) + now - started
        self._at = now
        if self.debt <= self._burst:
            return 0.0
        self.pauses += 1
        return (self.debt - self._burst) / self.share  # back to the burst's level


#: A worker's data pipe, charged only for reads that carried something the host did not ask
#: for (events, log records, requests, answers to no call): answers cost it nothing. Its
#: burst lets an occasional heavy frame through; a pause longer than `_DATA_PAUSE_MAX` would
#: starve the worker's liveness answers (they share the pipe), so the module is stopped with
#: a LimitExceeded instead.
_DATA_CPU_SHARE, _DATA_CPU_BURST, _DATA_PAUSE_MAX = 0.1, 1.0, 1.0
#: Its stdout/stderr: 500 relayed lines/s cost ~1% of a CPU.
_OUTPUT_CPU_SHARE, _OUTPUT_CPU_BURST = 0.1, 0.2


def encode_for_worker(message: list[Any], what: str) -> bytes:
    """One host→worker frame, refused here if the worker's decoder would refuse its size
    (a worker fed an oversized frame could only die of it, long after the caller gave up).
    `what` names the message in that refusal; `{}` in it stands for `message[2]` (the
    method's name: formatted only if the frame is refused, not on every call).

    Raises:
        TypeError: a value msgpack cannot carry.
        ValueError: the frame is larger than a worker accepts (`DEFAULT_MAX_FRAME`).
    """
    frame = encode(message)
    size = len(frame) - HEADER.size
    if size > DEFAULT_MAX_FRAME:
        raise ValueError(
            f"{what.format(message[2])} encodes to {size} bytes; a worker accepts frames of "
            f"at most {DEFAULT_MAX_FRAME} bytes. Send the data in smaller pieces"
        )
    return frame


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Worker text made safe for the host's logs: control characters (ANSI escapes, carriage
    returns) escaped, and continuation lines marked so no line can pass for a host record."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.replace("\n", "\n    | ")


def _running_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio
        return False
    return True


class _FutureWaiter:
    """What a pending call waits on, under asyncio: anyio.Event's job for its one waiter at a
    fraction of its cost (an asyncio.Event with a waiter list, under a wrapper) — a bare
    future. Cancelling the awaiting task cancels the future, as with any await."""

    __slots__ = ("_future",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._future: asyncio.Future[None] = loop.create_future()

    def set(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    def is_set(self) -> bool:
        return self._future.done() and not self._future.cancelled()

    def wait(self) -> asyncio.Future[None]:
        return self._future


@functools.cache
def _trio_lowlevel() -> Any:
    import trio.lowlevel  # only under trio: an asyncio host need not have it imported

    return trio.lowlevel


def _trio_clock(trio: Any) -> Callable[[], float]:
    """trio.current_time() without its three layers of calls: trio's default clock is
    perf_counter() plus an offset fixed for the run. Any other clock (a test's MockClock)
    is asked each time."""
    try:
        from trio._core._run import SystemClock  # private: its place may change
    except ImportError:
        return trio.current_time  # type: ignore[no-any-return]
    clock = trio.lowlevel.current_clock()
    if type(clock) is not SystemClock:
        return trio.current_time  # type: ignore[no-any-return]
    offset: float = clock.offset
    perf_counter = time.perf_counter
    return lambda: perf_counter() + offset


class _TrioWaiter:
    """The same under trio: the one waiting task parked and rescheduled directly (what
    trio.Event does through a parking lot, behind anyio's wrapper)."""

    __slots__ = ("_set", "_task")

    def __init__(self) -> None:
        self._task: Any = None
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            task = self._task
            if task is not None:
                self._task = None
                _trio_lowlevel().reschedule(task)

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> Awaitable[None]:
        # trio's own awaitable, returned rather than awaited: no coroutine of ours per call.
        lowlevel = _trio_lowlevel()
        if self._set:
            return lowlevel.checkpoint()  # type: ignore[no-any-return]
        self._task = lowlevel.current_task()
        return lowlevel.wait_task_rescheduled(self._abort)  # type: ignore[no-any-return]

    def _abort(self, _: Any) -> Any:  # cancelled while parked
        self._task = None
        return _trio_lowlevel().Abort.SUCCEEDED


class _Pending:
    __slots__ = ("acked", "error", "event", "method", "timed_out", "value")

    def __init__(self, method: str, event: Any) -> None:
        self.event = event
        self.method = method
        self.value: Any = None
        self.error: BaseException | None = None
        self.acked = False
        self.timed_out = False


ModuleMessageHandler = Callable[["WorkerConnection", Op, list[Any]], None]


class WorkerConnection:
    """The host's end of one running worker."""

    def __init__(
        self,
        name: str,
        launched: LaunchedWorker,
        *,
        max_frame: int,
        max_in_flight: int,
        on_message: ModuleMessageHandler,
    ) -> None:
        self.name = name
        self.launched = launched
        self.pid = launched.pid
        self.logger = logging.getLogger(f"plexisandbox.module.{name}")
        self._decoder = FrameDecoder(max_frame)
        self._data_budget = _HostCpuBudget(_DATA_CPU_SHARE, _DATA_CPU_BURST)
        self._unasked = False  # the last read carried messages the host did not ask for
        self._output_budget = _HostCpuBudget(_OUTPUT_CPU_SHARE, _OUTPUT_CPU_BURST)
        self._on_message = on_message
        self._pending: dict[int, _Pending] = {}
        self._cancelling: set[int] = set()
        self._pings: dict[int, anyio.Event] = {}
        self._stacks: dict[int, tuple[anyio.Event, list[str]]] = {}
        self._ids = itertools.count(1)
        # Call slots: a plain count while any is free; the semaphore (no tokens of its own)
        # only for callers that must wait, each handed its slot by a finishing call.
        self._free_slots = max_in_flight
        self._slot_waiters = 0
        self._slots = anyio.Semaphore(0)
        self._batch: list[bytes] = []
        self._in_callback = False
        # anyio.Event() looks the backend up on every construction; the class is per backend.
        self._new_event: Callable[[], anyio.Event] = type(anyio.Event())
        # A call's waiter and clock, the cheapest each backend has (see _FutureWaiter).
        self._new_waiter: Callable[[], Any] = self._new_event
        self._now: Callable[[], float] = anyio.current_time
        if _running_asyncio():
            loop = asyncio.get_running_loop()
            self._new_waiter = functools.partial(_FutureWaiter, loop)
            self._now = loop.time
        else:
            import trio

            self._new_waiter = _TrioWaiter
            self._now = _trio_clock(trio)
        self._deadlines: list[tuple[float, int]] = []
        self._deadline_target = math.inf
        self._deadline_wake = anyio.Event()
        self._deferred: deque[tuple[Op, list[Any]]] = deque()
        self._deferred_wake = anyio.Event()
        self._batch_wake = anyio.Event()
        self._outq: deque[memoryview] = deque()
        self._hard_cap = max(64 * 1024 * 1024, 4 * max_frame)
        self._out_bytes = 0
        self._flushing = False
        self._drained = anyio.Event()
        self._drained.set()
        self._backlog = False  # not _drained.is_set(), as a plain flag: read on every call
        self._big_pipes = False
        self._holds_grown_pipes = False
        self._handshake_send, self._handshake_recv = anyio.create_memory_object_stream[list[Any]](8)
        self._phase = Op.HELLO
        self._tg: anyio.abc.TaskGroup | None = None
        self._kill_cause: tuple[str, str] | None = None
        self._death_error: SandboxError | None = None
        self.exited = anyio.Event()
        self._gone = False  # exited.is_set(), as a plain flag: read on every call
        self.exit_info: ExitInfo | None = None
        self.output_tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._output_done = anyio.Event()
        self._line_tokens = 2000.0
        self._line_clock = time.monotonic()
        self.lines_dropped = 0
        self.started_at = time.monotonic()

    # -- running ---------------------------------------------------------------------------
    async def run(
        self, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve this worker until its process is gone; then fail everything pending."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self.launched.unsent:  # the rest of a first frame written ahead
                    self.send_nowait(self.launched.unsent)
                    self.launched.unsent = b""
                tg.start_soon(self._read_loop)
                tg.start_soon(self._output_loop)
                tg.start_soon(self._batch_loop)
                tg.start_soon(self._relay_deferred)
                tg.start_soon(self._deadline_loop)
                task_status.started()
                await anyio.wait_readable(self.launched.exit_fd)  # the status is known
                # The process is gone: its pipes report EOF; give the readers a moment to
                # drain the last output lines, then stop them whatever holds the pipes open.
                with anyio.move_on_after(1.0):
                    await self._output_done.wait()
                tg.cancel_scope.cancel()
        finally:
            self._finish()

    def _finish(self) -> None:
        if self.exit_info is not None:
            return
        if self._holds_grown_pipes:
            global _grown_pipes
            self._holds_grown_pipes = False
            _grown_pipes -= 1
        proc = self.launched.process
        returncode = proc.poll()
        if returncode is None:  # cancelled while alive (supervisor shutting down)
            self.kill("killed", "the supervisor stopped")
            returncode = proc.wait()
        exit_code = returncode if returncode >= 0 else None
        sig = -returncode if returncode < 0 else None
        if self._kill_cause is not None:
            cause, reason = self._kill_cause
        elif sig is not None:
            cause, reason = ("limit" if sig == signal.SIGXCPU else "signal"), ""
            if sig == signal.SIGXCPU:
                reason = "CPU time rlimit (RLIMIT_CPU) reached"
        elif exit_code == 0:
            cause, reason = "clean", ""
        else:
            cause, reason = "crash", ""
        self.exit_info = ExitInfo(
            cause,
            exit_code,
            sig,
            reason,
            time.time(),
            tuple(self.output_tail),
            limit=getattr(self._death_error, "limit", None)
            or ("cpu_seconds" if sig == signal.SIGXCPU else None),
            stacks=getattr(self._death_error, "stacks", None),
        )
        error = self.death_error()
        for pending in self._pending.values():
            pending.error = error
            pending.event.set()
        self._pending.clear()
        for event in self._pings.values():
            event.set()
        for event, _ in self._stacks.values():
            event.set()
        # Both ends: a receiver still waiting wakes with EndOfStream; an unclosed end would
        # warn (ResourceWarning) when the connection is collected.
        self._handshake_send.close()
        self._handshake_recv.close()
        self.launched.close()
        self._gone = True
        self.exited.set()

    def death_error(self) -> SandboxError:
        """The typed error every call pending at the worker's death receives."""
        if self._death_error is not None:
            return self._death_error
        info = self.exit_info
        if info is None:
            return WorkerCrashed(module=self.name, reason="the worker is stopping")
        if info.cause == "protocol":
            return ProtocolViolation(info.reason, module=self.name)
        if info.cause == "limit" and info.signal == signal.SIGXCPU:
            return LimitExceeded(
                module=self.name,
                limit="cpu_seconds",
                observed="RLIMIT_CPU reached",
                threshold="Limits.cpu_seconds",
            )
        return WorkerCrashed(
            module=self.name,
            exit_code=info.exit_code,
            signal=info.signal,
            reason=info.reason,
            stderr_tail=info.output_tail,
            cause=info.cause,
        )

    def kill(self, cause: str, reason: str, error: SandboxError | None = None) -> None:
        """SIGKILL the worker's process group, recording why (first reason wins)."""
        if self._kill_cause is None:
            self._kill_cause = (cause, reason)
            self._death_error = error
            if cause not in ("clean", "killed"):
                self.logger.warning("killing worker pid %d: %s (%s)", self.pid, cause, reason)
        if self.launched.process.returncode is not None:
            return
        try:
            signal.pidfd_send_signal(self.launched.pidfd, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass

    async def terminate(self, term_grace: float = _TERM_GRACE) -> None:
        """The end of the shutdown ladder, after the module's `shutdown()` hook had its grace:
        SIGTERM the worker's process group, SIGKILL it if still there after `term_grace`.
        Recorded as a clean exit. Returns once the process is reaped."""
        if self._kill_cause is None:
            self._kill_cause = ("clean", "closed by the supervisor")
        if self.launched.process.returncode is None and not self.exited.is_set():
            try:
                signal.pidfd_send_signal(self.launched.pidfd, signal.SIGTERM)
                os.killpg(self.pid, signal.SIGTERM)
            except OSError:
                pass
            with anyio.move_on_after(term_grace):
                await self.exited.wait()
            if not self.exited.is_set():
                self.logger.warning(
                    "worker pid %d ignored SIGTERM for %gs; sending SIGKILL", self.pid, term_grace
                )
                self.kill("clean", "closed by the supervisor")
        await self.exited.wait()

    def violate(self, reason: str) -> None:
        """The worker broke the protocol: kill it; pending calls get ProtocolViolation."""
        self.kill("protocol", reason, ProtocolViolation(reason, module=self.name))

    @property
    def alive(self) -> bool:
        return not self._gone

    # -- reading ---------------------------------------------------------------------------
    def _consume(self, fd: int) -> bool | None:
        """Read, parse and dispatch what the worker sent: True; None at end of file; False
        once it broke the protocol.

        Raises:
            BlockingIOError: nothing to read after all.
            OSError: as os.readv.
        """
        try:
            messages = self._decoder.read_from(fd)
            if messages is None:
                return None
            if self._decoder.pending > _PIPE_DEFAULT and not self._big_pipes:
                self._grow_pipes()
            for message in messages:
                # The answer to a call, checked inline (what check_shape checks, for this
                # shape): it is most of the traffic. Anything else takes the general check.
                if (
                    type(message) is list
                    and len(message) == 3
                    and message[0] == _RESULT
                    and type(message[1]) is int
                ):
                    self._dispatch(Op.RESULT, message)
                else:
                    self._dispatch(check_shape(message), message)
        except ProtocolError as exc:
            self.violate(str(exc))
            return False
        return True

    async def _read_loop(self) -> None:
        fd = self.launched.data_read
        if _running_asyncio():
            if not await self._read_with_asyncio_reader(fd):
                return
        else:
            wait_readable = _trio_lowlevel().wait_readable  # anyio's adds a backend lookup
            clock = time.perf_counter
            while True:
                await wait_readable(fd)
                started = clock()
                try:
                    result = self._consume(fd)
                except BlockingIOError:
                    continue
                except OSError:
                    break
                except Exception as exc:  # never let a frame end the supervisor's tasks
                    _log.exception("error handling a frame from module %s", self.name)
                    self.violate(f"frame could not be handled: {type(exc).__name__}")
                    return
                if result is None:
                    break
                if not result:
                    return
                pause = self._data_pause(started)
                if pause:
                    await anyio.sleep(pause)
        # The worker closed its end of the channel. A worker that keeps running without a
        # channel is of no use to anyone: kill it if it does not exit by itself.
        with anyio.move_on_after(_EOF_GRACE):
            await self.exited.wait()
        self.kill("crash", "closed its channel")

    async def _read_with_asyncio_reader(self, fd: int) -> bool:
        """asyncio fast path: one persistent reader callback that parses and dispatches in
        place. anyio's wait_readable() registers and unregisters the fd with epoll on every
        call and needs a task switch per read — most of the host's cost of a small call.
        Returns False when the worker broke the protocol, True at end of file."""
        loop = asyncio.get_running_loop()
        done = anyio.Event()
        outcome = [True]
        clock = time.perf_counter
        paused: list[asyncio.TimerHandle] = []  # the resume() of a read paused by the budget

        def resume() -> None:
            paused.clear()
            loop.add_reader(fd, on_readable)

        def on_readable() -> None:
            self._in_callback = True
            started = clock()
            try:
                result = self._consume(fd)
            except BlockingIOError:
                return
            except OSError:
                result = None
            except Exception as exc:  # never let a frame break the event loop's callback
                _log.exception("error handling a frame from module %s", self.name)
                self.violate(f"frame could not be handled: {type(exc).__name__}")
                result = False
            finally:
                self._in_callback = False
            if not result:
                outcome[0] = result is None  # end of file, not a violation
                loop.remove_reader(fd)
                done.set()
                return
            pause = self._data_pause(started)
            if pause:
                loop.remove_reader(fd)
                paused.append(loop.call_later(pause, resume))

        loop.add_reader(fd, on_readable)
        try:
            await done.wait()
        finally:
            # Cancelled while paused (the worker died, the supervisor stops): no resume()
            # may register this fd again once it is closed (its number may be reused).
            for handle in paused:
                handle.cancel()
            loop.remove_reader(fd)
        return outcome[0]

    def _dispatch(self, op: Op, message: list[Any]) -> None:
        if op is Op.RESULT or op is Op.ERROR:
            request_id = message[1]
            pending = self._pending.pop(request_id, None)
            if pending is None:
                self._cancelling.discard(request_id)  # a late answer to a cancelled call
                self._unasked = True
                return
            if op is Op.RESULT:
                pending.value = message[2]
            else:
                pending.error = ModuleError(
                    module=self.name,
                    remote_type=message[2][:200],
                    remote_message=message[3][:4096],
                    remote_traceback=message[4][:16384],
                    method=pending.method,
                )
            pending.event.set()
        elif op is Op.ACK:
            pending = self._pending.get(message[1])
            if pending is not None:
                pending.acked = True
            else:
                self._unasked = True
        elif op is Op.PONG:
            event = self._pings.pop(message[1], None)
            if event is not None:
                event.set()
            else:
                self._unasked = True
        elif op is Op.LOG:
            self._unasked = True
            if not self._admit_line():
                return
            level = min(max(int(message[1]), logging.DEBUG), logging.CRITICAL)
            source = clean_text(message[2][:100])
            text = clean_text(message[3][:8192])
            self.logger.log(
                level, "%s", text if source == self.logger.name else f"[{source}] {text}"
            )
        elif op is Op.STACKS_DUMP:
            waiter = self._stacks.get(message[1])
            if waiter is not None:
                waiter[1].append(clean_text(message[2][:65536]))
                waiter[0].set()
            else:
                self._unasked = True
        elif op in (Op.HELLO, Op.CONFINED, Op.READY, Op.FATAL):
            if op is not Op.FATAL and op is not self._phase:
                raise ProtocolError(f"{op.name} out of order (expected {self._phase.name})")
            if op is not Op.FATAL:
                self._phase = {Op.HELLO: Op.CONFINED, Op.CONFINED: Op.READY}.get(op, Op.ACK)
            try:
                self._handshake_send.send_nowait(message)
            except anyio.WouldBlock as exc:
                raise ProtocolError("too many handshake messages") from exc
        else:  # EMIT, SUBSCRIBE, REQUEST, EVENT_DONE: the supervisor's business
            if op is not Op.EVENT_DONE:  # (that one answers events the host sent)
                self._unasked = True
            if self._in_callback:
                # Inside the asyncio reader callback there is no task, so nothing that starts
                # tasks (requests) may run here: hand these to the relay task, in order.
                if not self._deferred:
                    self._deferred_wake.set()
                self._deferred.append((op, message))
            else:
                self._on_message(self, op, message)

    async def _relay_deferred(self) -> None:
        while True:
            await self._deferred_wake.wait()
            self._deferred_wake = anyio.Event()
            while self._deferred:
                op, message = self._deferred.popleft()
                if self._kill_cause is None or self._kill_cause[0] == "clean":
                    self._on_message(self, op, message)

    # -- output ------------------------------------------------------------------------------
    async def _output_loop(self) -> None:
        fd = self.launched.output_read
        buf = bytearray()
        skipping = False  # inside an over-long line whose head was already relayed
        clock = time.perf_counter
        try:
            while True:
                await anyio.wait_readable(fd)
                started = clock()
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                buf += data
                cut = buf.rfind(b"\n")
                if cut >= 0 and not self._lines_allowed():
                    # Over the rate limit: every complete line is dropped in bulk (one count,
                    # not a pass per line: a pipe of newlines is 65536 lines per read). The
                    # tail keeps the last of them.
                    start = buf.rfind(b"\n", 0, cut) + 1
                    if start or not skipping:
                        self.output_tail.append(_output_line(bytes(buf[start:cut])))
                    self._drop_lines(buf.count(b"\n", 0, cut + 1) - (1 if skipping else 0))
                    skipping = False
                    del buf[: cut + 1]
                while True:
                    newline = buf.find(b"\n")
                    if newline < 0:
                        if len(buf) > _MAX_LINE * 4:
                            if not skipping:
                                self._relay_line(bytes(buf[: _MAX_LINE * 4]), truncated=True)
                            skipping = True
                            buf.clear()
                        break
                    if not skipping:
                        self._relay_line(bytes(buf[:newline]))
                    skipping = False
                    del buf[: newline + 1]
                pause = self._output_budget.charge(started, clock())
                if pause:
                    self._throttled("its output", self._output_budget, pause)
                    await anyio.sleep(pause)
            if buf and not skipping:
                self._relay_line(bytes(buf))
        finally:
            self._output_done.set()

    def _data_pause(self, started: float) -> float:
        """After a read of the data pipe begun at `started`: how long to stop reading it (0:
        read on). Only a read that carried what the host did not ask for is charged; a pause
        past `_DATA_PAUSE_MAX` stops the module instead (0)."""
        if not self._unasked:
            return 0.0
        self._unasked = False
        pause = self._data_budget.charge(started, time.perf_counter())
        if not pause:
            return 0.0
        if pause <= _DATA_PAUSE_MAX:
            self._throttled("its messages", self._data_budget, pause)
            return pause
        observed = f"{self._data_budget.debt:.2f}s of host CPU for its unsolicited messages"
        threshold = f"{_DATA_CPU_SHARE:.0%} of a CPU, bursts of {_DATA_CPU_BURST:g}s"
        self.kill(
            "limit",
            f"host_cpu: {observed} > {threshold}",
            LimitExceeded(
                module=self.name,
                limit="host_cpu",
                observed=observed,
                threshold=threshold,
                hint="decoding and relaying what the module sent unasked (events, log records, "
                "requests) cost the host more than one module may take; have it send fewer "
                "or smaller ones",
            ),
        )
        return 0.0

    def _throttled(self, what: str, budget: _HostCpuBudget, pause: float) -> None:
        if budget.pauses in (1, 10, 100) or budget.pauses % 1000 == 0:
            self.logger.warning(
                "reading %s costs the host more than %d%% of a CPU: the host reads it more "
                "slowly (paused %.0f ms; %d times so far). The module sends more than it is "
                "worth: fewer, smaller events, log records or output lines",
                what,
                round(budget.share * 100),
                pause * 1000,
                budget.pauses,
            )

    def _relay_line(self, raw: bytes, truncated: bool = False) -> None:
        line = _output_line(raw, truncated)
        self.output_tail.append(line)
        if self._admit_line():
            self.logger.info("%s", line)

    def _lines_allowed(self) -> bool:
        # One token bucket for output lines and log records: 500/s sustained, bursts of 2000.
        now = time.monotonic()
        self._line_tokens = min(2000.0, self._line_tokens + (now - self._line_clock) * 500)
        self._line_clock = now
        return self._line_tokens >= 1

    def _admit_line(self) -> bool:
        if not self._lines_allowed():
            self._drop_lines(1)
            return False
        self._line_tokens -= 1
        return True

    def _drop_lines(self, count: int) -> None:
        # Drops are counted (stats().output_lines_dropped) and said, never silent.
        before = self.lines_dropped
        self.lines_dropped += count
        if before == 0 or before // 1000 != self.lines_dropped // 1000:
            self.logger.warning("output rate limit: %d lines dropped so far", self.lines_dropped)

    # -- writing -----------------------------------------------------------------------------
    def send_ordered(self, frame: bytes, *, batch: bool = False) -> None:
        """Send a request-path frame: at once, or — with `batch` while other calls are in
        flight — joined with the frames of the other callers woken in the same pass, one
        write for all (pipelined calls cost a fraction of a syscall each). Order is kept."""
        if self._batch or (batch and len(self._pending) > 1):
            if not self._batch:
                self._batch_wake.set()
            self._batch.append(frame)
            if len(self._batch) >= _BATCH_FRAMES or len(frame) > _PIPE_DEFAULT:
                # Hand the worker work now rather than at the end of the pass: it starts on
                # these while the host prepares the rest (two CPUs overlap, not alternate).
                # A large frame goes at once: the next caller must see the backlog it makes.
                data = b"".join(self._batch)
                self._batch.clear()
                self.send_nowait(data)
        else:
            self.send_nowait(frame)

    async def _batch_loop(self) -> None:
        while True:
            await self._batch_wake.wait()
            self._batch_wake = anyio.Event()
            if self._batch:
                data = b"".join(self._batch)
                self._batch.clear()
                self.send_nowait(data)

    def _grow_pipes(self) -> None:
        """Both pipes to 1 MiB, once large frames travel: 16 wake-ups per 16 MiB round trip
        instead of 256. Not up front: a pipe's size counts against its owner's pipe-page
        quota whether used or not, and most workers never send a large frame. Best effort:
        past /proc/sys/fs/pipe-max-size or the quota, the pipes stay as they are.

        At most `_GROWN_PIPES_MAX` connections per process hold grown pipes at once: a user
        past its soft pipe quota (pipe-user-pages-soft, 64 MiB by default) gets 8 KiB pipes
        for everything it creates next, and workers must not be able to push the host
        there by sending large frames."""
        global _grown_pipes
        self._big_pipes = True
        if _grown_pipes >= _GROWN_PIPES_MAX:
            return
        _grown_pipes += 1
        self._holds_grown_pipes = True
        for fd in (self.launched.data_write, self.launched.data_read):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_LARGE)
            except OSError:
                pass

    def send_nowait(self, frame: bytes) -> None:
        """Queue one frame for the worker; never blocks, never splits a frame."""
        if self._gone or self._kill_cause is not None:
            return
        if len(frame) > _PIPE_DEFAULT and not self._big_pipes:
            self._grow_pipes()
        if not self._outq:
            try:
                written = os.write(self.launched.data_write, frame)
            except BlockingIOError:
                written = 0
            except OSError:
                return  # the worker is gone; the exit watcher reports it
            if written == len(frame):
                return
            frame = frame[written:]
        self._outq.append(memoryview(frame))
        self._out_bytes += len(frame)
        if self._out_bytes > self._hard_cap:
            # Events and replies are queued without waiting; a worker that stops reading its
            # channel must not make the host buffer without bound.
            self.kill(
                "unresponsive",
                f"not reading its channel: {self._out_bytes} bytes queued for it",
            )
            self._outq.clear()
            return
        if self._out_bytes > _HIGH_WATER and not self._backlog:
            self._backlog = True
            self._drained = anyio.Event()
        if not self._flushing and self._tg is not None:
            self._flushing = True
            self._tg.start_soon(self._flush)

    async def _flush(self) -> None:
        fd = self.launched.data_write
        try:
            while self._outq:
                await anyio.wait_writable(fd)
                if not self._outq:  # cleared meanwhile: the worker was killed (send_nowait)
                    break
                head = self._outq[0]
                try:
                    written = os.write(fd, head)
                except BlockingIOError:
                    continue
                except OSError:
                    self._outq.clear()
                    break
                self._out_bytes -= written
                if written == len(head):
                    self._outq.popleft()
                else:
                    self._outq[0] = head[written:]
        finally:
            self._flushing = False
            self._out_bytes = 0 if not self._outq else self._out_bytes
            self._backlog = False
            self._drained.set()

    def _send_control(self, message: list[Any]) -> bool:
        # Control frames are tiny; a full control pipe means the control thread is not
        # reading, which is itself the answer (unresponsive).
        try:
            return os.write(self.launched.ctl_write, encode(message)) > 0
        except OSError:
            return False

    # -- handshake -----------------------------------------------------------------------------
    async def _expect(self, op: Op, timeout: float, stage: str) -> dict[str, Any]:
        try:
            with anyio.fail_after(timeout):
                message = await self._handshake_recv.receive()
        except TimeoutError:
            self.kill("failed_start", f"no {op.name} within {timeout:g}s during {stage}")
            await self.exited.wait()
            raise self.death_error() from None
        except (anyio.EndOfStream, anyio.ClosedResourceError):  # the worker is gone
            raise self.death_error() from None
        if message[0] == Op.FATAL:
            _, where, kind, text, trace = message
            # A worker that reports FATAL exits at once; one that lingers (module code can
            # forge a FATAL at import time) is killed, so load() never waits unbounded.
            with anyio.move_on_after(_EOF_GRACE):
                await self.exited.wait()
            if not self.exited.is_set():
                self.kill("failed_start", f"sent FATAL ({where[:32]}) but did not exit")
                await self.exited.wait()
            # Only the confinement phase can report a missing layer; later it is module code.
            if where.startswith("confine:") and op is Op.CONFINED:
                raise ConfinementUnavailable(
                    module=self.name, layer=where.partition(":")[2][:64], detail=text[:2000]
                )
            raise ModuleError(
                module=self.name,
                remote_type=kind[:200],
                remote_message=f"during {where[:32]}: {text[:4096]}",
                remote_traceback=trace[:16384],
            )
        return message[1]  # type: ignore[no-any-return]

    async def handshake(self, boot: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        """HELLO (version check) → BOOT → CONFINED; return the confinement report.

        `boot` None: BOOT was written into the worker's input ahead of its start
        (`_launcher.write_ahead`); the worker reads it only after its HELLO, and a HELLO of
        another wire version is refused here just the same.
        """
        hello = await self._expect(Op.HELLO, timeout, "start-up")
        theirs = hello.get("wire")
        if theirs != WIRE_VERSION:
            reason = (
                f"wire protocol mismatch: supervisor speaks v{WIRE_VERSION}, worker speaks "
                f"v{str(theirs)[:40]}. The worker runtime comes from a different plexisandbox "
                "install; reinstall plexisandbox so both sides come from the same version"
            )
            self.violate(reason)
            await self.exited.wait()
            raise ProtocolViolation(reason, module=self.name)
        if boot is not None:
            self.send_nowait(encode([Op.BOOT, boot]))
        return await self._expect(Op.CONFINED, timeout, "confinement")

    async def go(self, timeout: float) -> dict[str, Any]:
        """GO → READY: the module is imported and instantiated; return its description."""
        self.send_nowait(encode([Op.GO]))
        return await self._expect(Op.READY, timeout, "import")

    # -- requests ----------------------------------------------------------------------------
    async def request(self, op: Op, method: str, argument: Any, timeout: float | None) -> Any:
        """Send CALL or LIFE and wait for its answer, its deadline, or the worker's death.

        Raises:
            CallTimeout: past the deadline; the worker is told to cancel the call.
            ModuleError: module code raised.
            WorkerCrashed, ProtocolViolation, LimitExceeded: the worker died meanwhile.
            TypeError: an argument msgpack cannot carry.
        """
        if self._gone or self._kill_cause is not None:
            raise self.death_error()
        deadline = math.inf if timeout is None else self._now() + timeout
        if self._free_slots > 0:
            # Fast path: a free slot needs no wait (Semaphore.acquire() always yields to the
            # event loop once, a whole extra loop pass per call).
            self._free_slots -= 1
        else:
            self._slot_waiters += 1
            try:
                with anyio.fail_at(deadline):  # waiting for a slot counts towards the deadline
                    await self._slots.acquire()
            except TimeoutError:
                raise CallTimeout(module=self.name, method=method, timeout=timeout or 0) from None
            finally:
                self._slot_waiters -= 1
            if self.exited.is_set():  # died while this caller waited for a slot
                self._release_slot()
                raise self.death_error()
        try:
            while self._backlog:
                # Wait behind a backlog before adding to it: callers that each queued their
                # frame first and waited afterwards passed the hard cap together (twelve
                # 8 MiB calls at once) and killed a worker that reads as fast as it can.
                try:
                    with anyio.fail_at(deadline):
                        await self._drained.wait()
                except TimeoutError:
                    raise CallTimeout(
                        module=self.name, method=method, timeout=timeout or 0
                    ) from None
                if self._gone or self._kill_cause is not None:
                    raise self.death_error()
            request_id = next(self._ids)
            frame = encode_for_worker([op, request_id, method, argument], "the call of {}()")
            pending = _Pending(method, self._new_waiter())
            self._pending[request_id] = pending
            self._track_deadline(deadline, request_id)
            try:
                self.send_ordered(frame, batch=True)
                if self._backlog:
                    with anyio.fail_at(deadline):
                        await self._drained.wait()
                await pending.event.wait()
                if pending.timed_out:
                    raise TimeoutError
            except TimeoutError:
                if self._pending.pop(request_id, None) is not None:
                    self._cancel(request_id)
                    raise CallTimeout(
                        module=self.name, method=method, timeout=timeout or 0
                    ) from None
            except BaseException:
                if self._pending.pop(request_id, None) is not None:
                    self._cancel(request_id)
                raise
            if pending.error is not None:
                raise pending.error
            return pending.value
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        if self._slot_waiters:
            self._slots.release()  # straight to a waiting caller
        else:
            self._free_slots += 1

    # -- deadlines ----------------------------------------------------------------------------
    # One watcher task per worker instead of a cancel scope per call: a scope costs a third of
    # the host's CPU time per small call; a heap entry costs next to nothing.
    def _track_deadline(self, deadline: float, request_id: int) -> None:
        if deadline == math.inf:
            return
        heap = self._deadlines
        heapq.heappush(heap, (deadline, request_id))
        if len(heap) > 2 * len(self._pending) + 1024:  # drop answered calls' entries
            self._deadlines = [e for e in heap if e[1] in self._pending]
            heapq.heapify(self._deadlines)
        if deadline < self._deadline_target:
            self._deadline_wake.set()

    async def _deadline_loop(self) -> None:
        while True:
            heap = self._deadlines
            while heap and heap[0][1] not in self._pending:
                heapq.heappop(heap)
            self._deadline_target = heap[0][0] if heap else math.inf
            self._deadline_wake = self._new_event()
            with anyio.move_on_at(self._deadline_target):
                await self._deadline_wake.wait()
            now = anyio.current_time()
            heap = self._deadlines
            while heap and heap[0][0] <= now:
                _, request_id = heapq.heappop(heap)
                pending = self._pending.get(request_id)
                if pending is not None and not pending.event.is_set():
                    pending.timed_out = True
                    pending.event.set()

    def _cancel(self, request_id: int) -> None:
        self.send_ordered(encode([Op.CANCEL, request_id]))
        self._cancelling.add(request_id)
        if self._tg is not None:
            self._tg.start_soon(self._enforce_cancel, request_id)

    async def _enforce_cancel(self, request_id: int) -> None:
        await anyio.sleep(_CANCEL_GRACE)
        if request_id in self._cancelling and self.alive and self._kill_cause is None:
            from ._watchdog import capture_stacks_shared  # one dump for many ignored cancels

            stacks, _ = await capture_stacks_shared(self, 1.0)
            if self._kill_cause is not None or not self.alive:
                return
            self.logger.error(
                "worker ignored a cancel for %gs; killing it. Python stacks:\n%s",
                _CANCEL_GRACE,
                stacks or "(unavailable)",
            )
            reason = f"ignored a cancelled call for {_CANCEL_GRACE:g}s"
            self.kill(
                "unresponsive",
                reason,
                WorkerCrashed(
                    module=self.name,
                    reason=f"unresponsive: {reason}",
                    stderr_tail=tuple(self.output_tail),
                    cause="unresponsive",
                    stacks=stacks,
                ),
            )

    async def ping(self, timeout: float, *, control: bool = False) -> bool:
        """True when the worker answers within `timeout`: its event loop (default) or, with
        `control=True`, its control thread (alive even while module code is busy)."""
        if not self.alive:
            return False
        ping_id = secrets.randbits(62)  # unguessable: a worker cannot answer in advance
        event = anyio.Event()
        self._pings[ping_id] = event
        try:
            if control:
                if not self._send_control([Op.CTL_PING, ping_id]):
                    return False
            else:
                self.send_nowait(encode([Op.PING, ping_id]))
            with anyio.move_on_after(timeout):
                await event.wait()
            return event.is_set() and self.alive
        finally:
            self._pings.pop(ping_id, None)

    async def capture_stacks(self, timeout: float) -> str | None:
        """Every thread's Python stack from the worker, via its control thread."""
        if not self.alive:
            return None
        stack_id = secrets.randbits(62)
        event, holder = anyio.Event(), list[str]()
        self._stacks[stack_id] = (event, holder)
        try:
            if not self._send_control([Op.STACKS, stack_id]):
                return None
            with anyio.move_on_after(timeout):
                await event.wait()
            return holder[0] if holder else None
        finally:
            self._stacks.pop(stack_id, None)

    def reply(self, request_id: int, ok: bool, value: Any) -> None:
        """Answer a REQUEST the worker made (host service or module-to-module call)."""
        try:
            frame = encode_for_worker([Op.REPLY, request_id, ok, value], "the reply")
        except (TypeError, ValueError) as exc:
            frame = encode([Op.REPLY, request_id, False, [type(exc).__name__, str(exc)]])
        self.send_nowait(frame)

    @property
    def in_flight(self) -> int:
        return len(self._pending)
