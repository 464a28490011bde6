"""Worker side: the serve loop — lifecycle, calls, events and host requests over the channel.

The asyncio event loop reads the host→worker pipe directly (`add_reader`), runs calls in a
resident runner task — a call that waits gets a task of its own, so calls pipeline and one
slow call does not hold up the next (see `_runner`) — and writes answers through the shared
`FrameWriter`. A separate control thread (`control.py`) answers liveness pings and stack
dumps even while module code keeps this loop busy.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from plexisandbox._configcheck import check_config
from plexisandbox._protocol import (
    DEFAULT_MAX_FRAME,
    HEADER,
    FrameDecoder,
    Op,
    ProtocolError,
    decode_body,
    encode,
)
from plexisandbox.errors import PermissionDenied, SandboxError, ServiceError
from plexisandbox.interfaces import BaseModule, ModuleState

from .channel import FrameWriter

__all__ = ["Runtime"]

_log = logging.getLogger("plexisandbox.worker")

# Lifecycle operations the host may ask for, and the module state each leaves behind.
_LIFECYCLE: dict[str, ModuleState | None] = {
    "initialize": ModuleState.INITIALIZING,
    "start": ModuleState.ACTIVE,
    "stop": ModuleState.LOADED,
    "pause": ModuleState.PAUSED,
    "resume": ModuleState.ACTIVE,
    "shutdown": ModuleState.UNLOADED,
    "health_check": None,
    "apply_config": None,
    "get_current_config": None,
    "configure": None,
}
_MAX_TRACEBACK = 16 * 1024
_FLUSH_EVERY = 16  # answers per write while a batch of calls runs


def _safe_text(render: Callable[[], str], fallback: str) -> str:
    # Module exceptions may define a __str__ that raises; the call must be answered anyway.
    try:
        return str(render())
    except Exception:
        return fallback


def error_frame(request_id: int, exc: BaseException) -> bytes:
    """An ERROR frame for `exc`, with the module's traceback text (bounded)."""
    kind = type(exc).__qualname__
    text = _safe_text(lambda: "".join(traceback.format_exception(exc)), f"{kind} (unprintable)")
    message = _safe_text(lambda: str(exc), f"<unprintable {kind}>")
    return encode([Op.ERROR, request_id, kind, message[:4096], text[-_MAX_TRACEBACK:]])


class Runtime:
    """The module's side of the supervisor: implements `interfaces.RuntimeBridge`."""

    def __init__(
        self,
        module: BaseModule,
        writer: FrameWriter,
        fd_in: int,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.module = module
        self.max_frame = max_frame  # the host's Limits.max_message_bytes for this module
        self.writer = writer
        self.fd_in = fd_in
        self.decoder = FrameDecoder()
        self.tasks: dict[int, asyncio.Task[Any]] = {}  # calls that wait, by request id
        self.queued: dict[int, Any] = {}  # calls not started yet (coroutines), in order
        self.runners: set[asyncio.Task[None]] = set()
        self._idle: asyncio.Future[None] | None = None
        self._stopping = False
        self.requests: dict[int, asyncio.Future[Any]] = {}
        self.next_request = 1
        self.events: asyncio.Queue[tuple[str, Any, str]] = asyncio.Queue()
        self.closed: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- RuntimeBridge (called by BaseModule) ---------------------------------------------
    def subscribe(self, module: BaseModule, event: str) -> None:
        self.writer.send([Op.SUBSCRIBE, event])

    def emit(self, module: BaseModule, event: str, data: Any) -> None:
        message = [Op.EMIT, event, data]
        self.writer.send_frame(self._checked(encode(message), data, "the event's data"))

    async def call_service(self, module: BaseModule, service: str, kwargs: dict[str, Any]) -> Any:
        return await self._request("service", service, "", kwargs)

    async def call_module(
        self, module: BaseModule, target: str, method: str, kwargs: dict[str, Any]
    ) -> Any:
        return await self._request("module", target, method, kwargs)

    async def _request(self, kind: str, target: str, method: str, kwargs: dict[str, Any]) -> Any:
        assert self.loop is not None
        request_id = self.next_request
        self.next_request += 1
        future: asyncio.Future[Any] = self.loop.create_future()
        self.requests[request_id] = future
        try:
            message = [Op.REQUEST, request_id, kind, target, method, kwargs]
            self.writer.send_frame(self._checked(encode(message), kwargs, "the arguments"))
            return await future
        finally:
            self.requests.pop(request_id, None)

    # -- the loop ----------------------------------------------------------------------------
    async def serve(self, pending: list[Any]) -> None:
        """Run until the host closes the channel."""
        self.loop = asyncio.get_running_loop()
        self.writer.bind_loop(self.loop)
        self.closed = self.loop.create_future()
        events_task = self.loop.create_task(self._deliver_events())
        for message in pending:
            self._dispatch(message)
        self._spawn_runner()
        self.loop.add_reader(self.fd_in, self._on_readable)
        try:
            await self.closed
        finally:
            self.loop.remove_reader(self.fd_in)
            events_task.cancel()
            self._stopping = True
            for runner in list(self.runners):
                runner.cancel()

    def _on_readable(self) -> None:
        try:
            messages = self.decoder.read_from(self.fd_in)
        except BlockingIOError:
            return
        except ProtocolError as exc:
            # The host never sends a bad frame; if one arrives the channel is unusable.
            # Exiting (rather than failing on every later read) lets the host see why.
            os.write(2, f"plexisandbox worker: bad frame from the host: {exc}\n".encode())
            os._exit(69)
        if messages is None:
            assert self.closed is not None
            if not self.closed.done():
                self.closed.set_result(None)
            return
        for message in messages:
            self._dispatch(message)

    def _dispatch(self, message: list[Any]) -> None:
        op = message[0]
        assert self.loop is not None
        if op == Op.CALL:
            _, request_id, method, kwargs = message
            self._queue(request_id, self._call(request_id, method, kwargs))
        elif op == Op.LIFE:
            _, request_id, operation, argument = message
            self._queue(request_id, self._lifecycle(request_id, operation, argument))
        elif op == Op.CANCEL:
            if not self._cancel_queued(message[1]):
                task = self.tasks.get(message[1])
                if task is not None:
                    task.cancel()
        elif op == Op.PING:
            self.writer.send([Op.PONG, message[1]])
        elif op == Op.EVENT:
            _, event, data, source = message
            self.events.put_nowait((event, data, source))
        elif op == Op.REPLY:
            _, request_id, ok, value = message
            future = self.requests.get(request_id)
            if future is not None and not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(_remote_error(self.module.name, value))

    # -- running calls -------------------------------------------------------------------
    # A task per call costs the worker most of a small call's time: creating it, a loop pass
    # to run its first step, another for its done callbacks. Most calls never wait, so one
    # resident *runner* task runs queued calls back to back, each in a copy of the context
    # as a task would. A call that does wait keeps the runner as its own task from then on
    # (cancelling that task cancels the call, as before) and a fresh runner takes the queue:
    # code that asks for current_task() always gets the task that runs it.
    def _queue(self, request_id: int, coro: Any) -> None:
        self.queued[request_id] = coro
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _spawn_runner(self) -> None:
        assert self.loop is not None
        runner = self.loop.create_task(self._runner())
        self.runners.add(runner)
        runner.add_done_callback(self.runners.discard)

    async def _runner(self) -> None:
        assert self.loop is not None
        me = asyncio.current_task()
        assert me is not None
        queued = self.queued
        done = 0
        while True:
            while queued:
                request_id = next(iter(queued))
                coro = queued.pop(request_id)
                context = contextvars.copy_context()
                self.writer.held = True  # the runner flushes: answers batch meanwhile
                try:
                    first = context.run(coro.send, None)
                except StopIteration:
                    done += 1
                    if done % _FLUSH_EVERY == 0:
                        self.writer.flush()  # let the host start on these meanwhile
                    if me.cancelling():
                        # Module code cancelled current_task() (this runner) in a call that
                        # then returned at once: that must not reach the next call. Retire.
                        self._spawn_runner()
                        return
                    continue  # answered without waiting: the common case
                except BaseException:  # cannot happen: _answer() turns everything into a frame
                    _log.exception("call %d escaped its handler", request_id)
                    continue
                finally:
                    self.writer.held = False
                # The call waits for something: this task is its task from now on.
                self.writer.send([Op.ACK, request_id])
                self.tasks[request_id] = me
                self._spawn_runner()
                try:
                    await _Resume(coro, context, first)
                finally:
                    self.tasks.pop(request_id, None)
                return
            self.writer.flush()
            self._idle = self.loop.create_future()
            try:
                await self._idle
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                self._spawn_runner()  # cancelled by module code that kept a reference to it
                return
            finally:
                self._idle = None

    def _cancel_queued(self, request_id: int) -> bool:
        coro = self.queued.pop(request_id, None)
        if coro is None:
            return False
        coro.close()
        self.writer.send_frame(error_frame(request_id, asyncio.CancelledError()))
        return True

    async def _call(self, request_id: int, method: str, kwargs: dict[str, Any]) -> None:
        module = self.module
        if type(module).call_method is BaseModule.call_method:
            await self._answer(request_id, lambda: module._invoke(method, kwargs))
        else:  # the module overrides the seed's call_method: honour it
            await self._answer(request_id, lambda: module.call_method(method, **kwargs))

    async def _lifecycle(self, request_id: int, operation: str, argument: Any) -> None:
        if operation not in _LIFECYCLE:
            self.writer.send_frame(
                error_frame(request_id, ValueError(f"unknown lifecycle operation {operation!r}"))
            )
            return
        if operation == "configure":
            await self._answer(request_id, lambda: _ready(self._configure(argument)))
            return
        target = getattr(self.module, operation)
        await self._answer(
            request_id,
            lambda: _awaitable(target(argument) if operation == "apply_config" else target()),
            after=_LIFECYCLE[operation],
        )

    async def _answer(
        self,
        request_id: int,
        start: Callable[[], Awaitable[Any]],
        after: ModuleState | None = None,
    ) -> None:
        # `start` is called inside the try: module code raising before its first await (a bad
        # argument, a sync lifecycle method) must still produce an ERROR frame, never silence.
        try:
            result = await start()
            frame = self._checked(encode([Op.RESULT, request_id, result]), result, "the answer")
        except asyncio.CancelledError as exc:
            frame = error_frame(request_id, exc)
        except Exception as exc:  # module code: anything may come out
            self.module.last_error = exc
            frame = error_frame(request_id, exc)
        except BaseException as exc:  # SystemExit/KeyboardInterrupt from module code
            frame = error_frame(request_id, exc)
        else:
            if after is not None and result is not False:
                self.module.state = after
        if self.writer.held or len(self.tasks) > 1:
            # The runner flushes its batch when its queue is empty; waiting calls that finish
            # in the same loop pass share one write at its end.
            self.writer.send_frame(frame)
        else:
            self.writer.send_now(frame)  # a lone call: nothing to batch with, answer at once

    def _checked(self, frame: bytes, value: Any, what: str) -> bytes:
        """`frame` if the host will accept it; else ValueError for the module code.

        The host kills a worker that sends a frame past its limits (size, nesting, lengths):
        a module that merely returned or sent too much must fail that one call instead.
        Only a container can break a limit other than the size (nesting, lengths, a tuple
        as a dict key, which the host decodes as a list): one is decoded as the host will,
        ~1-2 µs for a typical answer (decode_body bounds its depth walk cheaply).
        """
        size = len(frame) - HEADER.size
        if size > self.max_frame:
            raise ValueError(
                f"{what} is {size} bytes packed, over this module's limit of {self.max_frame} "
                "bytes (Limits.max_message_bytes); send less data, or ask the operator to "
                "raise the limit"
            )
        if isinstance(value, list | tuple | dict | set | frozenset):
            try:
                decode_body(memoryview(frame)[HEADER.size :], self.max_frame)
            except ProtocolError as exc:
                hint = (
                    "a dict key is a tuple or another container (it arrives as a list, which "
                    "cannot be a key); use str or int keys"
                    if "unhashable" in str(exc)
                    else "send flatter or smaller data"
                )
                raise ValueError(
                    f"{what} cannot cross the sandbox boundary: {exc}; {hint}"
                ) from None
        return frame

    def _configure(self, config: Any) -> dict[str, Any]:
        # Validate against the module's own schema here, inside the sandbox: the schema is
        # module code's output and must not be evaluated by the host (ReDoS in `pattern`).
        checked, problem = check_config(self.module.get_config_schema(), config)
        if problem is not None:
            return {"ok": False, **problem}
        if not self.module.apply_config(checked):
            return {
                "ok": False,
                "path": "$",
                "rule": "apply_config",
                "message": "the module's apply_config() returned False",
            }
        return {"ok": True, "config": checked}

    async def _deliver_events(self) -> None:
        # One consumer keeps events in emission order for this module. Handled events are
        # reported in batches: the host keeps at most Limits.event_queue unreported.
        # A handler's failure is the handler's alone, whatever it raises: a CancelledError
        # (awaiting a task it cancelled) or SystemExit must not end delivery for good, as a
        # call's does not end the worker. Each handler runs in a copy of the context, as a
        # call does, so that what one sets is not seen by the next.
        me = asyncio.current_task()
        assert me is not None
        done = 0
        while True:
            if done and (done >= 64 or self.events.empty()):
                self.writer.send([Op.EVENT_DONE, done])
                done = 0
            try:
                event, data, _source = await self.events.get()
            except asyncio.CancelledError:
                if self._stopping:
                    raise
                me.uncancel()  # module code cancelled this task (a handler kept a reference)
                continue
            done += 1
            for handler in self.module.handlers_for(event):
                try:
                    await _in_context(contextvars.copy_context(), handler, data)
                    self.module.metrics.record_event()
                except BaseException as exc:  # module code: anything may come out
                    if self._stopping:
                        raise
                    self.module.metrics.record_error()
                    self.module.logger.error("event handler for %r failed", event, exc_info=exc)


class _Resume:
    """Awaiting this continues a coroutine whose first step already ran (in the runner), as
    `yield from` would: what it yields goes to the task, what the task sends or throws
    (cancellation) goes back in — always inside the call's own context."""

    __slots__ = ("context", "coro", "first")

    def __init__(self, coro: Any, context: contextvars.Context, first: Any) -> None:
        self.coro, self.context, self.first = coro, context, first

    def __await__(self) -> Any:
        coro, run = self.coro, self.context.run
        value = self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task (cancellation): pass it on
                try:
                    value = run(coro.throw, exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = run(coro.send, sent)
                except StopIteration as stop:
                    return stop.value


async def _in_context(context: contextvars.Context, function: Any, *args: Any) -> Any:
    """Call `function` and await what it returns, every step inside `context` (as a task
    created with that context would run it)."""
    result = context.run(function, *args)
    if inspect.iscoroutine(result):
        try:
            first = context.run(result.send, None)
        except StopIteration as stop:
            return stop.value
        return await _Resume(result, context, first)
    if inspect.isawaitable(result):
        return await result
    return result


async def _ready(value: Any) -> Any:
    return value


def _awaitable(value: Any) -> Awaitable[Any]:
    return value if inspect.isawaitable(value) else _ready(value)


def _remote_error(module: str, value: Any) -> Exception:
    """Turn the host's refusal of a request into an exception inside the module."""
    kind, message = [*value, "", ""][:2] if isinstance(value, list) else ("Error", str(value))
    if kind == "PermissionDenied":
        return PermissionDenied(str(message), module=module)
    if kind == "ServiceError":
        return ServiceError(str(message), module=module)
    return SandboxError(f"{kind}: {message}", module=module)
