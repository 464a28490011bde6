"""Host side: `ModuleHandle` — one module's lifecycle, calls, restarts and statistics."""

from __future__ import annotations

import fnmatch
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._bpf import template as seccomp_template
from ._compiled import MAGIC as COMPILED_MAGIC
from ._compiled import compiled_module
from ._datadir import prepare_data_dir, release_after_exit
from ._limits import Limits, RestartPolicy, RestartStrategy
from ._policy import SandboxPolicy, derive_policy
from ._protocol import WIRE_VERSION, Op, encode, pack_body
from ._sources import ResolvedSource
from ._states import check_transition
from ._verify import verify_confinement
from ._watchdog import capture_stacks_shared, supervise_health
from ._worker import ExitInfo, WorkerConnection
from .errors import (
    CallTimeout,
    ConfigInvalid,
    ModuleError,
    ModuleUnavailable,
    PermissionDenied,
    ProtocolViolation,
    SandboxError,
)
from .interfaces import ModulePermissions, ModuleState

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["ModuleHandle", "ModuleStats"]

_log = logging.getLogger("plexisandbox")
_BOOT_TIMEOUT = 20.0
#: Event patterns one module may subscribe to; more is a protocol violation.
MAX_SUBSCRIPTIONS = 256
#: Bytes of events a module may have unhandled, beside `Limits.event_queue` events: without
#: it, 1000 events of 16 MiB could pile up towards one subscriber, far past what the host
#: queues for a worker (`WorkerConnection`'s cap, 64 MiB, shared with calls and replies)
#: and the worker's memory limit. One event always goes through, whatever its size: at
#: most 32 MiB of events are queued.
MAX_EVENT_BYTES = 16 * 1024 * 1024
_SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True)
class ModuleStats:
    """A snapshot of one module: identity, state, counters, latency, last exit."""

    name: str
    pid: int | None
    state: ModuleState
    calls: int
    errors: int
    timeouts: int
    restarts: int
    in_flight: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    confinement_layers: tuple[str, ...]
    missing_layers: tuple[str, ...]
    last_exit: ExitInfo | None
    output_lines_dropped: int
    events_delivered: int
    events_dropped: int
    #: The watchdog's latest reading of the running worker (None before the first sample or
    #: while no worker runs): resident and unique memory, CPU time and percent of one core
    #: over `Limits.cpu_window`, threads, open descriptors.
    rss_bytes: int | None = None
    uss_bytes: int | None = None
    cpu_seconds: float | None = None
    cpu_percent: float | None = None
    threads: int | None = None
    open_fds: int | None = None
    #: `ExitInfo.label` of the last worker exit: clean, module_error, signal:SIGKILL,
    #: cpu_rlimit, memory_limit, watchdog:<limit>, protocol, unresponsive, failed_start.
    last_exit_cause: str | None = None
    latency_p90_ms: float | None = None
    #: Debug mode: health probes, deadlines and the CPU-percent limit are suspended.
    debug: bool = False


class ModuleHandle:
    """The supervisor's handle on one sandboxed module. Obtain it from `Supervisor.load()`."""

    def __init__(
        self,
        supervisor: Supervisor,
        name: str,
        source: ResolvedSource,
        *,
        config: dict[str, Any],
        grant: ModulePermissions,
        limits: Limits,
        restart: RestartPolicy,
        strict: bool,
    ) -> None:
        self._sup = supervisor
        self.name = name
        self.source = source
        self.config = dict(config)
        self.grant = grant
        self.limits = limits
        self.restart_policy = restart
        self.strict = strict
        self._state = ModuleState.UNLOADED
        self.history: list[tuple[float, ModuleState]] = [(time.time(), ModuleState.UNLOADED)]
        self.declared: ModulePermissions | None = None
        self.description: dict[str, Any] = {}
        self.applied_config: dict[str, Any] = {}
        self.policy: SandboxPolicy | None = None
        self.confinement: dict[str, Any] = {"layers": (), "missing": {}}
        self._conn: WorkerConnection | None = None
        self._calls = 0
        self._errors = 0
        self._timeouts = 0
        self._restarts: deque[float] = deque()
        self._restart_count = 0
        self._latencies: deque[float] = deque(maxlen=2048)
        self.last_exit: ExitInfo | None = None
        self._stopping = False
        #: Loads and restarts under way (automatic or operator): shutdown() cancels them all,
        #: so that none brings a worker up for a module that is being unloaded.
        self._bringing_up: set[anyio.CancelScope] = set()
        self._unloaded = anyio.Event()
        self._target_state = ModuleState.LOADED
        self.subscriptions: set[str] = set()
        self._matcher: re.Pattern[str] | Literal[False] | None = None
        #: The contract-validation report from load() (None when validate=False).
        self.validation: dict[str, Any] | None = None
        #: Permissions another module must hold to call this one (Supervisor.load()).
        self.call_requires: frozenset[str] = frozenset()
        self.requests_in_flight = 0
        #: Threads this module's calls to sync host services may occupy at once.
        self.service_limiter = anyio.CapacityLimiter(4)
        self._events_unacked = 0
        self._unacked_sizes: deque[int] = deque()  # in delivery order, which is handling order
        self._unacked_bytes = 0
        self.events_delivered = 0
        self.events_dropped = 0
        #: Debug mode: suspends health probes, call and lifecycle deadlines and the
        #: CPU-percent limit, so the module's author can sit in a debugger. Memory, thread
        #: and fd limits still hold. Switch it at any time: `handle.debug = True`.
        self.debug = False

    # -- state -------------------------------------------------------------------------------
    @property
    def state(self) -> ModuleState:
        """The module's current `ModuleState`."""
        return self._state

    def _set(self, state: ModuleState) -> None:
        # Once shutdown() has begun, a recovery still unwinding must not move the module
        # anywhere but towards UNLOADED.
        if self._stopping and state not in (ModuleState.UNLOADING, ModuleState.UNLOADED):
            return
        if state is not self._state:
            self._state = state
            self.history.append((time.time(), state))
            _log.debug("module %s -> %s", self.name, state.name)

    @property
    def pid(self) -> int | None:
        """The worker's pid while one runs."""
        return self._conn.pid if self._conn is not None and self._conn.alive else None

    # -- loading -----------------------------------------------------------------------------
    async def _spawn(self, policy: SandboxPolicy) -> WorkerConnection:
        # Confinement (issue 3): a machine-wide unique uid per worker when the host is root,
        # its data folder handed to that uid (links never followed), released at exit.
        lease = self._sup._lease_uid() if "uid" in policy.layers else None
        try:
            wire = policy.to_wire()
            if "seccomp" in policy.layers:
                # libseccomp's program for this rule set, generated once per host process:
                # the worker only writes its pid in and loads it (plexisandbox._bpf).
                # The rules travel packed beside it: the worker unpacks them only if it cannot
                # use the program (its pid equals a sentinel's), and as ~300 strings they were
                # a sizeable part of decoding BOOT on every start.
                wire["seccomp_bpf"], wire["syscalls"] = _seccomp_program(wire["syscalls"])
            if lease is not None:
                wire["uid"] = wire["gid"] = lease.uid
            if policy.data_dir is not None:
                prepare_data_dir(policy.data_dir, lease.uid if lease is not None else None)
            source = self.source.spec
            if source.get("kind") == "file":
                code = compiled_module(source["path"])  # run by the worker only after GO
                if code is not None:
                    source = {**source, "code": code, "magic": COMPILED_MAGIC}
            boot = {
                "wire": WIRE_VERSION,
                "module": self.name,
                "policy": wire,
                "source": source,
                "log_level": self._sup.log_level,
                "max_frame": self.limits.max_message_bytes,
            }
            # BOOT goes into the worker's input ahead of its start: it reads it right after
            # its HELLO, which the handshake still checks first (docs/protocol.md).
            launched = await self._sup._launch(
                dict(policy.env), [*wire["read"], *wire["write"]], encode([Op.BOOT, boot])
            )
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        conn = WorkerConnection(
            self.name,
            launched,
            max_frame=self.limits.max_message_bytes,
            max_in_flight=self.limits.max_in_flight,
            on_message=self._sup._on_worker_message,
        )
        await self._sup._task_group.start(conn.run)
        self._sup._task_group.start_soon(release_after_exit, conn, lease, policy, self.limits)
        if lease is not None:
            self._sup._lease_ahead()  # the worker is confining itself meanwhile
        try:
            report = await conn.handshake(None, _BOOT_TIMEOUT)
            layers = verify_confinement(
                conn.pid, policy, report, uid=lease.uid if lease is not None else None
            )
            self.confinement = {"layers": tuple(layers), "missing": dict(report.get("missing", {}))}
            self.description = _check_description(self.name, await conn.go(_BOOT_TIMEOUT))
        except BaseException:
            conn.kill("failed_start", "start-up did not complete")
            with anyio.CancelScope(shield=True):
                await conn.exited.wait()
            self.last_exit = conn.exit_info  # a failed (re)start shows on stats()
            raise
        return conn

    def _policy_for(self, declared: ModulePermissions) -> SandboxPolicy:
        return derive_policy(
            declared,
            self.limits,
            self._sup.host_facts,
            module=self.name,
            module_paths=self.source.read_paths,
            data_dir=self._sup.data_dir_for(self.name, declared),
            strict=self.strict,
        )

    async def _boot(self) -> None:
        """Start a worker, learn the declaration, check the grant, configure. → LOADED."""
        # The declaration is module code's output, so it is read inside a worker confined to
        # the baseline; when the declaration needs no more than that, the same worker stays.
        nothing = ModulePermissions()
        baseline = self._policy_for(nothing)
        conn = await self._spawn(baseline)
        try:
            declared = ModulePermissions.from_dict(self.description["permissions"])
            missing = declared.missing_from(self.grant)
            if missing:
                raise PermissionDenied.not_granted(self.name, missing, sorted(declared.names()))
            # derive_policy is pure: a module that declares nothing gets exactly the baseline
            # it runs under already (deriving it again costs ~0.1 ms on the start-up path).
            policy = baseline if declared == nothing else self._policy_for(declared)
            if policy != baseline:
                await self._close(conn)
                conn = await self._spawn(policy)
            self.declared, self.policy = declared, policy
            for pattern in self.description.get("subscriptions", ()):
                self.subscribe(pattern)
            self._conn = conn  # from here on its events and requests are this module's
            result = await conn.request(Op.LIFE, "configure", self.config, _BOOT_TIMEOUT)
            if not isinstance(result, dict) or result.get("ok") is not True:
                problem = result if isinstance(result, dict) else {}
                raise ConfigInvalid(
                    f"module {self.name!r} rejected its config at {problem.get('path', '$')}: "
                    f"{str(problem.get('message', 'invalid'))[:500]} (rule "
                    f"{str(problem.get('rule', '?'))[:40]}); fix config= to match the "
                    "module's get_config_schema()",
                    module=self.name,
                    path=str(problem.get("path", "$"))[:200],
                    rule=str(problem.get("rule", ""))[:40],
                )
            self.applied_config = result.get("config", {})
        except BaseException:
            self._conn = None
            await self._close(conn)
            raise
        self._events_unacked = self._unacked_bytes = 0
        self._unacked_sizes.clear()
        self._sup._task_group.start_soon(self._watch, conn)
        self._sup._task_group.start_soon(supervise_health, self, conn)

    async def _close(self, conn: WorkerConnection) -> None:
        """End the worker: SIGTERM, then SIGKILL after a grace; return once it is reaped."""
        with anyio.CancelScope(shield=True):
            await conn.terminate()

    async def _load(self) -> None:
        self._set(ModuleState.LOADING)
        try:
            finished = await self._bring_up(self._boot)
        except BaseException:
            self._set(ModuleState.FAILED)
            raise
        if not finished:
            raise self._shut_down_meanwhile("load")
        self._set(ModuleState.LOADED)

    async def _bring_up(self, steps: Callable[[], Awaitable[None]]) -> bool:
        """Run `steps` (a load or a restart) so that shutdown() can cancel it. False when
        shutdown() came first: then no worker of this module is left running."""
        with anyio.CancelScope() as scope:
            self._bringing_up.add(scope)
            try:
                await steps()
            finally:
                self._bringing_up.discard(scope)
        if not scope.cancel_called:
            return True
        # Cancelled by shutdown(), which took the worker it saw; `steps` may have finished
        # one after that look (its answer arrived in the same tick as the cancellation).
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._close(conn)  # shielded
        return False

    def _shut_down_meanwhile(self, operation: str) -> ModuleUnavailable:
        return ModuleUnavailable(
            f"module {self.name!r} was shut down while its {operation} was under way; "
            "load() it again to use it",
            module=self.name,
            state=self._state.value,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def _life(
        self, operation: str, argument: Any = None, timeout: float | None = None
    ) -> Any:
        conn = self._require_conn(operation)
        return await conn.request(
            Op.LIFE,
            operation,
            argument,
            self._deadline(timeout),
        )

    def _deadline(self, timeout: float | None) -> float | None:
        """`timeout`, else `Limits.call_timeout`; none at all in debug mode."""
        if self.debug:
            return None
        return timeout if timeout is not None else self.limits.call_timeout

    async def _life_ok(self, operation: str) -> None:
        result = await self._life(operation)
        if result is not True:
            raise ModuleError(
                module=self.name,
                remote_type="LifecycleFailed",
                remote_message=f"{operation}() returned {result!r} instead of True; see the "
                "module's log for why",
                method=operation,
            )

    async def start(self) -> None:
        """LOADED → INITIALIZING (`initialize()`, then `start()`) → ACTIVE.

        Raises:
            IllegalTransition: not LOADED.
            ModuleError: `initialize()`/`start()` raised or returned something but True
                (the module goes to FAILED; so does a start() that is cancelled midway, since
                the module's state is then unknown).
        """
        check_transition(self.name, "start", self._state)
        self._set(ModuleState.INITIALIZING)
        try:
            await self._life_ok("initialize")
            await self._life_ok("start")
        except BaseException:
            # A shutdown() racing with this start owns the state from here on.
            if not self._stopping and self._state is ModuleState.INITIALIZING:
                self._set(ModuleState.FAILED)
            raise
        self._target_state = ModuleState.ACTIVE
        self._set(ModuleState.ACTIVE)

    async def stop(self) -> None:
        """ACTIVE/PAUSED → LOADED via the module's `stop()`."""
        check_transition(self.name, "stop", self._state)
        await self._life_ok("stop")
        self._target_state = ModuleState.LOADED
        self._set(ModuleState.LOADED)

    async def pause(self) -> None:
        """ACTIVE → PAUSED via the module's `pause()`; calls are refused while paused."""
        check_transition(self.name, "pause", self._state)
        await self._life_ok("pause")
        self._target_state = ModuleState.PAUSED
        self._set(ModuleState.PAUSED)

    async def resume(self) -> None:
        """PAUSED → ACTIVE via the module's `resume()`."""
        check_transition(self.name, "resume", self._state)
        await self._life_ok("resume")
        self._target_state = ModuleState.ACTIVE
        self._set(ModuleState.ACTIVE)

    async def health_check(self) -> dict[str, Any]:
        """The module's own `health_check()` dict (the seed's contract), bounded by a deadline."""
        check_transition(self.name, "health_check", self._state)
        result = await self._life("health_check", timeout=min(self.limits.call_timeout, 10.0))
        if not isinstance(result, dict):
            raise ModuleError(
                module=self.name,
                remote_type="ContractError",
                remote_message=f"health_check() returned {type(result).__name__}, not a dict",
                method="health_check",
            )
        return result

    async def shutdown(self) -> None:
        """→ UNLOADING → UNLOADED: the module's `shutdown()` (bounded), then the worker ends.

        Never raises for a module that misbehaves on the way out: a shutdown hook that fails
        or hangs is logged and the worker is killed.
        """
        if self._state is ModuleState.UNLOADED:
            return
        if self._state is ModuleState.UNLOADING:  # a shutdown is already under way: join it
            await self._unloaded.wait()
            return
        check_transition(self.name, "shutdown", self._state)
        self._stopping = True
        self._set(ModuleState.UNLOADING)
        for scope in list(self._bringing_up):
            scope.cancel()
        conn = self._conn
        try:
            if conn is not None and conn.alive:
                # The grace is the hook's only deadline (cancelling the call cancels the hook).
                with anyio.move_on_after(_SHUTDOWN_GRACE) as grace:
                    await conn.request(Op.LIFE, "shutdown", None, None)
                if grace.cancelled_caught:
                    _log.warning(
                        "module %s: shutdown() did not return within %gs; its worker is "
                        "stopped anyway",
                        self.name,
                        _SHUTDOWN_GRACE,
                    )
        except SandboxError as exc:
            _log.warning("module %s: shutdown() failed: %s", self.name, exc)
        finally:
            # Even when the caller is cancelled during the module's hook, the worker ends.
            if conn is not None:
                await self._close(conn)  # shielded
            self._conn = None
            self._set(ModuleState.UNLOADED)
            self._unloaded.set()

    # -- calls -------------------------------------------------------------------------------
    def _require_conn(self, operation: str) -> WorkerConnection:
        conn = self._conn
        if conn is None or not conn.alive:
            raise ModuleUnavailable(
                f"module {self.name!r} has no running worker ({self._state.name}); it cannot "
                f"{operation}() until it is loaded again",
                module=self.name,
                state=self._state.value,
            )
        return conn

    async def call(self, method: str, /, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call one of the module's API methods; keyword arguments only, as in the seed.

        Cancelling the awaiting task cancels the call in the worker.

        Raises:
            CallTimeout: no answer within `timeout` (default `Limits.call_timeout`).
            ModuleError: the method raised (remote type, message and traceback attached).
            WorkerCrashed: the worker died before answering.
            ModuleUnavailable: the module is not ACTIVE.
            TypeError: an argument msgpack cannot carry.
        """
        if self._state is not ModuleState.ACTIVE:
            hint = "start() it first" if self._state is ModuleState.LOADED else "see stats()"
            if self._state is ModuleState.PAUSED:
                hint = "resume() it first"
            raise ModuleUnavailable(
                f"module {self.name!r} is {self._state.name} and takes calls only when ACTIVE; "
                f"{hint}",
                module=self.name,
                state=self._state.value,
            )
        conn = self._conn
        if conn is None or not conn.alive:
            conn = self._require_conn("call")  # raises
        started = time.perf_counter()
        self._calls += 1
        try:
            return await conn.request(
                Op.CALL,
                method,
                kwargs,
                self._deadline(timeout),
            )
        except CallTimeout as exc:
            self._timeouts += 1
            if exc.stacks is None and conn.alive:
                # Where the worker is at the deadline: the line that hung, for the caller and
                # the log. Concurrent timeouts share one dump.
                exc.stacks, fresh = await capture_stacks_shared(conn, 0.5)
                if fresh:
                    _log.warning(
                        "module %s: %s() timed out after %gs; worker stacks:\n%s",
                        self.name,
                        method,
                        exc.timeout,
                        exc.stacks or "(unavailable)",
                    )
            raise
        except (SandboxError, TypeError):
            self._errors += 1
            raise
        finally:
            self._latencies.append(time.perf_counter() - started)

    # -- supervision -------------------------------------------------------------------------
    async def _watch(self, conn: WorkerConnection) -> None:
        await conn.exited.wait()
        if conn is not self._conn or self._stopping:
            return
        info = conn.exit_info
        self.last_exit = info
        self._conn = None
        _log.warning(
            "module %s: worker pid %d ended (%s%s)%s",
            self.name,
            conn.pid,
            info.label if info else "?",
            f": {info.reason}" if info and info.reason else "",
            "; last output:\n  " + "\n  ".join(info.output_tail[-10:])
            if info and info.output_tail
            else "",
        )
        self._set(ModuleState.ERROR)
        if not self._should_restart(info):
            self._set(ModuleState.FAILED)
            return
        # shutdown() cancels it: a restart must never bring an unloaded module back.
        await self._bring_up(self._restart_with_backoff)

    def _should_restart(self, info: ExitInfo | None) -> bool:
        policy = self.restart_policy
        if policy.strategy is RestartStrategy.TEMPORARY:
            return False
        if (
            policy.strategy is RestartStrategy.TRANSIENT
            and info is not None
            and info.cause == "clean"
        ):
            return False
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > policy.period:
            self._restarts.popleft()
        if len(self._restarts) >= policy.max_restarts:
            _log.error(
                "module %s: %d restarts within %gs; giving up (FAILED). Fix the module and "
                "call restart()",
                self.name,
                len(self._restarts),
                policy.period,
            )
            return False
        return True

    async def _restart_with_backoff(self) -> None:
        # A loop, not a recursion: a policy that never gives up (a period shorter than the
        # backoff) would otherwise nest one frame per failed attempt until RecursionError.
        policy = self.restart_policy
        while True:
            attempt = len(self._restarts)
            delay = min(policy.backoff_max, policy.backoff_initial * policy.backoff_factor**attempt)
            delay *= 1 + random.uniform(-policy.jitter, policy.jitter)
            await anyio.sleep(max(delay, 0.0))
            if self._stopping or self._state is not ModuleState.ERROR:
                return  # shut down, or an operator restart() came first, during the backoff
            self._restarts.append(time.monotonic())
            self._restart_count += 1
            try:
                await self._reboot()
                return
            except (SandboxError, OSError) as exc:  # OSError: no fds or processes left
                _log.error("module %s: restart failed: %s", self.name, exc)
                self._set(ModuleState.ERROR)
                if not self._should_restart(None):
                    self._set(ModuleState.FAILED)
                    return

    async def _reboot(self) -> None:
        """Load, configure and bring the module back to the state it was in."""
        self._set(ModuleState.LOADING)
        await self._boot()
        self._set(ModuleState.LOADED)
        if self._target_state in (ModuleState.ACTIVE, ModuleState.PAUSED):
            try:
                self._set(ModuleState.INITIALIZING)
                await self._life_ok("initialize")
                await self._life_ok("start")
                self._set(ModuleState.ACTIVE)
                if self._target_state is ModuleState.PAUSED:
                    await self._life_ok("pause")
                    self._set(ModuleState.PAUSED)
            except BaseException:
                # The new worker runs but its module refused to come back: end it, or the
                # next attempt replaces self._conn and this worker runs on, unowned, and a
                # FAILED module keeps a live worker.
                conn, self._conn = self._conn, None
                if conn is not None:
                    await self._close(conn)  # shielded
                raise

    async def restart(self) -> None:
        """Operator action: replace the worker and return to the previous running state;
        also brings a FAILED module back (its restart budget starts afresh).

        Raises:
            IllegalTransition: not LOADED, ACTIVE, PAUSED, ERROR or FAILED (e.g. a restart
                is already under way).
            ModuleUnavailable: shutdown() came while the restart was under way.
            SandboxError: the new worker could not be brought back (the module is FAILED).
        """
        check_transition(self.name, "restart", self._state)
        try:
            finished = await self._bring_up(self._replace)
        except BaseException:
            self._set(ModuleState.FAILED)
            raise
        if not finished:
            raise self._shut_down_meanwhile("restart")

    async def _replace(self) -> None:
        # LOADING at once: a second restart() (a double click) or start()/stop() meanwhile is
        # refused instead of booting a second worker. The old worker stops being this
        # module's first, so its exit is no crash to recover.
        self._set(ModuleState.LOADING)
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._close(conn)
        self._restarts.clear()
        self._restart_count += 1
        await self._reboot()

    # -- events ------------------------------------------------------------------------------
    def owns(self, conn: WorkerConnection) -> bool:
        """Whether `conn` is this module's current worker (not a probe or a replaced one)."""
        return conn is self._conn

    def held(self) -> frozenset[str]:
        """The permissions the module may use: declared, which load() checked ⊆ granted."""
        return self.declared.names() if self.declared is not None else frozenset()

    def subscribe(self, pattern: str) -> bool:
        """Record a subscription; False when the module already has `MAX_SUBSCRIPTIONS`."""
        if pattern in self.subscriptions:
            return True
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS or not pattern or len(pattern) > 200:
            return False
        self.subscriptions.add(pattern)
        self._matcher = None
        return True

    def wants(self, event: str) -> bool:
        """Whether the module subscribed to `event` (exactly or by a wildcard pattern).

        Every publish asks every module, so wildcard patterns are compiled once into a
        single regex (rebuilt only when the subscriptions change).
        """
        if event in self.subscriptions:
            return True
        if self._matcher is None:
            wild = [p for p in self.subscriptions if any(c in p for c in "*?[")]
            self._matcher = (
                re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in wild)) if wild else False
            )
        return bool(self._matcher and self._matcher.match(event))

    def deliver_event(self, frame: bytes) -> int:
        """Queue an encoded EVENT frame; 1 if queued, 0 if dropped (counted, logged)."""
        conn = self._conn
        if conn is None or not conn.alive or self._state is not ModuleState.ACTIVE:
            self.events_dropped += 1
            return 0
        if self._events_unacked >= self.limits.event_queue or (
            self._events_unacked and self._unacked_bytes + len(frame) > MAX_EVENT_BYTES
        ):
            self.events_dropped += 1
            if self.events_dropped in (1, 10, 100) or self.events_dropped % 1000 == 0:
                _log.warning(
                    "module %s is not keeping up with events: %d unhandled (%.1f MiB), %d "
                    "dropped so far (raise Limits(event_queue=) if bursts are expected; at "
                    "most %d MiB of events wait for one module)",
                    self.name,
                    self._events_unacked,
                    self._unacked_bytes / 1048576,
                    self.events_dropped,
                    MAX_EVENT_BYTES >> 20,
                )
            return 0
        self._events_unacked += 1
        self._unacked_sizes.append(len(frame))
        self._unacked_bytes += len(frame)
        self.events_delivered += 1
        conn.send_nowait(frame)
        return 1

    def events_handled(self, count: int) -> bool:
        """The worker reports `count` more events handled: reopen the window. False when it
        claims more than it was sent (a forged report to escape the bound)."""
        if not 0 < count <= self._events_unacked:
            return False
        self._events_unacked -= count
        for _ in range(count):
            self._unacked_bytes -= self._unacked_sizes.popleft()
        return True

    # -- introspection -----------------------------------------------------------------------
    def stats(self) -> ModuleStats:
        """A frozen snapshot: pid, state, counters, latency percentiles, last exit."""
        lat = sorted(self._latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None

        conn = self._conn
        sample = self._sup.watchdog.latest(conn)
        return ModuleStats(
            name=self.name,
            pid=self.pid,
            state=self._state,
            calls=self._calls,
            errors=self._errors,
            timeouts=self._timeouts,
            restarts=self._restart_count,
            in_flight=conn.in_flight if conn is not None else 0,
            latency_p50_ms=pct(0.5),
            latency_p99_ms=pct(0.99),
            confinement_layers=tuple(self.confinement.get("layers", ())),
            missing_layers=tuple(sorted(self.confinement.get("missing", {}))),
            last_exit=self.last_exit,
            output_lines_dropped=conn.lines_dropped if conn is not None else 0,
            events_delivered=self.events_delivered,
            events_dropped=self.events_dropped,
            rss_bytes=sample.rss_bytes if sample else None,
            uss_bytes=sample.uss_bytes if sample else None,
            cpu_seconds=round(sample.cpu_seconds, 3) if sample else None,
            cpu_percent=round(sample.cpu_percent, 1)
            if sample and sample.cpu_percent is not None
            else None,
            threads=sample.threads if sample else None,
            open_fds=sample.open_fds if sample else None,
            last_exit_cause=self.last_exit.label if self.last_exit else None,
            latency_p90_ms=pct(0.9),
            debug=self.debug,
        )

    def __repr__(self) -> str:
        return f"<ModuleHandle {self.name!r} {self._state.name} pid={self.pid}>"


_programs: dict[int, tuple[list[list[Any]], dict[str, Any] | None, bytes]] = {}


def _seccomp_program(syscalls: list[list[Any]]) -> tuple[dict[str, Any] | None, bytes]:
    """`_bpf.template()` for a policy's wire rules, and the rules msgpack-packed, looked up by
    the identity of the rule list (`_policy.wire_syscalls` hands out one list per rule set):
    the template's own cache is keyed by the rules' content, which costs more to build than
    to look up."""
    entry = _programs.get(id(syscalls))
    if entry is None or entry[0] is not syscalls:
        if len(_programs) >= 64:
            _programs.clear()
        entry = (syscalls, seccomp_template(syscalls), pack_body(syscalls))
        _programs[id(syscalls)] = entry
    return entry[1], entry[2]


#: API methods a READY description may name.
MAX_METHODS = 10_000


def _check_description(name: str, description: dict[str, Any]) -> dict[str, Any]:
    """The READY description is module output: check its shape before trusting any of it."""
    expected = {
        "class": str,
        "name": str,
        "version": str,
        "permissions": dict,
        "schema": object,
        "metadata": object,
        "methods": list,
        "api_version": str,
        "subscriptions": list,
    }
    for key, kind in expected.items():
        if key not in description or not isinstance(description[key], kind):
            raise ProtocolViolation(f"READY description lacks a valid {key!r}", module=name)
    signatures = description.get("signatures", {})
    if not isinstance(signatures, dict) or not all(
        isinstance(k, str) and isinstance(v, dict) for k, v in signatures.items()
    ):
        raise ProtocolViolation("READY signatures must map method names to objects", module=name)
    if len(description["methods"]) > MAX_METHODS or len(signatures) > MAX_METHODS:
        # Module output: a million names made validation cost the host seconds of a thread.
        raise ProtocolViolation(
            f"READY names more than {MAX_METHODS} API methods; a module lists the methods "
            "callers may call (get_available_methods())",
            module=name,
        )
    if not all(isinstance(m, str) for m in description["methods"]):
        raise ProtocolViolation("READY methods must be strings", module=name)
    if len(description["subscriptions"]) > MAX_SUBSCRIPTIONS:
        raise ProtocolViolation(
            f"more than {MAX_SUBSCRIPTIONS} event subscriptions at start-up", module=name
        )
    if not all(isinstance(s, str) for s in description["subscriptions"]):
        raise ProtocolViolation("READY subscriptions must be strings", module=name)
    try:
        ModulePermissions.from_dict(description["permissions"])
    except (ValueError, TypeError) as exc:
        raise ProtocolViolation(f"READY permissions are malformed: {exc}", module=name) from exc
    return description
