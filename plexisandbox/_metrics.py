"""Host side: module statistics as Prometheus text exposition (format 0.0.4).

No dependency on `prometheus_client`: the format is a few lines of text, and an operator's
existing scraper reads it from whatever endpoint the host application serves it on.
See https://prometheus.io/docs/instrumenting/exposition_formats/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .interfaces import ModuleState

if TYPE_CHECKING:
    from ._handle import ModuleStats
    from ._watchdog import Watchdog

__all__ = ["metrics_text"]

_Value = int | float | None
# (name, type, help, value of one module's stats)
_FAMILIES: tuple[tuple[str, str, str, Callable[[ModuleStats], _Value]], ...] = (
    ("calls_total", "counter", "Calls made to the module.", lambda s: s.calls),
    ("call_errors_total", "counter", "Calls that ended in an error.", lambda s: s.errors),
    ("call_timeouts_total", "counter", "Calls past their deadline.", lambda s: s.timeouts),
    (
        "restarts_total",
        "counter",
        "Worker restarts (automatic and operator).",
        lambda s: s.restarts,
    ),
    ("calls_in_flight", "gauge", "Calls awaiting an answer.", lambda s: s.in_flight),
    (
        "events_delivered_total",
        "counter",
        "Events delivered to the module.",
        lambda s: s.events_delivered,
    ),
    (
        "events_dropped_total",
        "counter",
        "Events dropped because the module's queue was full.",
        lambda s: s.events_dropped,
    ),
    (
        "output_lines_dropped_total",
        "counter",
        "Output lines dropped by the rate limit (current worker).",
        lambda s: s.output_lines_dropped,
    ),
    ("resident_memory_bytes", "gauge", "Worker resident set size.", lambda s: s.rss_bytes),
    ("unique_memory_bytes", "gauge", "Worker unique set size.", lambda s: s.uss_bytes),
    (
        "cpu_seconds_total",
        "counter",
        "CPU time of the current worker process.",
        lambda s: s.cpu_seconds,
    ),
    (
        "cpu_percent",
        "gauge",
        "Worker CPU use over the limit window, percent of one core.",
        lambda s: s.cpu_percent,
    ),
    ("threads", "gauge", "Worker threads.", lambda s: s.threads),
    ("open_fds", "gauge", "Worker open file descriptors.", lambda s: s.open_fds),
    (
        "debug_mode",
        "gauge",
        "1 while health checks and deadlines are suspended.",
        lambda s: s.debug,
    ),
)
_QUANTILES = (("0.5", "latency_p50_ms"), ("0.9", "latency_p90_ms"), ("0.99", "latency_p99_ms"))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


def metrics_text(
    stats_by_module: Mapping[str, ModuleStats], *, watchdog: Watchdog | None = None
) -> str:
    """Render `Supervisor.stats()` as Prometheus text, one family per metric, every sample
    labelled `module="<name>"`. Values a module does not have yet (no sample, no calls) are
    left out rather than reported as zero."""
    lines: list[str] = []
    modules = sorted(stats_by_module.items())

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP plexisandbox_module_{name} {text}")
        lines.append(f"# TYPE plexisandbox_module_{name} {kind}")

    for name, kind, text, get in _FAMILIES:
        family(name, kind, text)
        for module, stats in modules:
            value = get(stats)
            if value is not None:
                lines.append(
                    f'plexisandbox_module_{name}{{module="{_escape(module)}"}} {_number(value)}'
                )

    family("call_latency_seconds", "summary", "Call latency over the most recent calls.")
    for module, stats in modules:
        label = _escape(module)
        for quantile, field in _QUANTILES:
            ms = getattr(stats, field)
            if ms is not None:
                lines.append(
                    f'plexisandbox_module_call_latency_seconds{{module="{label}",'
                    f'quantile="{quantile}"}} {_number(ms / 1000)}'
                )
        lines.append(
            f'plexisandbox_module_call_latency_seconds_count{{module="{label}"}} {stats.calls}'
        )

    family("state", "gauge", "1 for the module's current lifecycle state.")
    for module, stats in modules:
        label = _escape(module)
        for state in ModuleState:
            lines.append(
                f'plexisandbox_module_state{{module="{label}",state="{state.value}"}} '
                f"{1 if stats.state is state else 0}"
            )

    family("up", "gauge", "1 while a worker process runs for the module.")
    for module, stats in modules:
        lines.append(
            f'plexisandbox_module_up{{module="{_escape(module)}"}} {0 if stats.pid is None else 1}'
        )

    family("last_exit_info", "gauge", "The classified cause of the module's last worker exit.")
    for module, stats in modules:
        if stats.last_exit_cause is not None:
            lines.append(
                f'plexisandbox_module_last_exit_info{{module="{_escape(module)}",'
                f'cause="{_escape(stats.last_exit_cause)}"}} 1'
            )

    if watchdog is not None:
        lines.append(
            "# HELP plexisandbox_watchdog_cpu_seconds_total CPU time the watchdog spent sampling."
        )
        lines.append("# TYPE plexisandbox_watchdog_cpu_seconds_total counter")
        lines.append(
            f"plexisandbox_watchdog_cpu_seconds_total {_number(float(watchdog.cpu_seconds))}"
        )
        lines.append("# HELP plexisandbox_watchdog_limit_kills_total Workers the watchdog killed.")
        lines.append("# TYPE plexisandbox_watchdog_limit_kills_total counter")
        lines.append(f"plexisandbox_watchdog_limit_kills_total {watchdog.kills}")
    return "\n".join(lines) + "\n"
