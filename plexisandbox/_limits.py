"""Host side (pure data, also read by policy derivation): resource limits and restart policy."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Limits", "RestartPolicy", "RestartStrategy"]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one module. Every field has a finite documented default.

    Kernel-enforced (rlimits in the worker): `cpu_seconds`, `open_files`, `file_mb`,
    `address_space_mb`, `processes`. Watchdog-enforced (psutil samples on the host; a breach
    kills the worker's process group with `LimitExceeded`): RSS above `memory_mb`, average CPU
    above `cpu_percent` over `cpu_window` seconds, CPU time above `cpu_seconds` (a backstop for
    the rlimit), more than `threads` threads, all `open_files` descriptors in use (exhaustion:
    the rlimit stops the count there); and the data-folder quota loop: a data folder above
    `data_mb`. Channel-enforced:
    `max_message_bytes`, `max_in_flight`, `call_timeout`. Health: `ping_interval`,
    `ping_timeout`, `ping_failures`, `stall_timeout`.
    """

    #: Resident memory (RSS) of the worker, MiB; the watchdog kills above it.
    memory_mb: int = 256
    #: Address space (RLIMIT_AS) in MiB; large because thread stacks reserve address space.
    address_space_mb: int = 2048
    #: Total CPU seconds (RLIMIT_CPU soft; hard is one second more so SIGXCPU comes first).
    cpu_seconds: int = 3600
    #: Average CPU use over `cpu_window` seconds, percent of one core; 0 disables.
    cpu_percent: float = 95.0
    cpu_window: float = 10.0
    #: Threads in the worker.
    threads: int = 32
    #: Open file descriptors (RLIMIT_NOFILE and the watchdog).
    open_files: int = 64
    #: Largest file the worker may write (RLIMIT_FSIZE), MiB.
    file_mb: int = 64
    #: Size of the private data folder (file access only), MiB.
    data_mb: int = 64
    #: Processes for the worker's uid (RLIMIT_NPROC; threads count too).
    processes: int = 64
    #: Default deadline of one call, seconds.
    call_timeout: float = 30.0
    #: Calls awaiting an answer at once; further callers wait for a slot.
    max_in_flight: int = 256
    #: Largest frame the worker may send, bytes.
    max_message_bytes: int = 16 * 1024 * 1024
    #: Events queued for the module before the overflow policy applies.
    event_queue: int = 1000
    #: Seconds between health probes: a control-thread ping (alive?) and an event-loop ping
    #: (making progress?).
    ping_interval: float = 5.0
    #: Seconds one ping may take before it counts as missed.
    ping_timeout: float = 2.0
    #: Consecutive missed control pings before the worker is declared unresponsive and
    #: killed (its stacks are captured first).
    ping_failures: int = 3
    #: Seconds the worker's event loop may go without answering (a blocking call in async
    #: module code) before it is declared unresponsive and killed, stacks captured first.
    stall_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"Limits.{name} must be a number, got {value!r}")
            if value < 0 or (value == 0 and name not in ("cpu_percent",)):
                raise ValueError(
                    f"Limits.{name} must be positive, got {value!r} (limits are never "
                    "unlimited; pick a large value instead)"
                )


class RestartStrategy(enum.StrEnum):
    """Erlang/OTP restart types."""

    #: Always restarted when it ends.
    PERMANENT = "permanent"
    #: Restarted only when it ends abnormally (crash, limit, unresponsive).
    TRANSIENT = "transient"
    #: Never restarted.
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class RestartPolicy:
    """At most `max_restarts` within `period` seconds, then FAILED; backoff in between."""

    strategy: RestartStrategy = RestartStrategy.TRANSIENT
    max_restarts: int = 3
    period: float = 60.0
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    backoff_factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        # Accept "temporary" etc. (config files): compare by member, never by string.
        object.__setattr__(self, "strategy", RestartStrategy(self.strategy))
        if self.max_restarts < 0 or self.period <= 0:
            raise ValueError(
                "RestartPolicy needs max_restarts >= 0 and period > 0, got "
                f"max_restarts={self.max_restarts}, period={self.period}"
            )
