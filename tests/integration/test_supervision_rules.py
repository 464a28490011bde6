"""Supervision rules without processes: exit classification, limit checks, Prometheus
rendering. (Kept next to the integration tests they back up.)"""

from __future__ import annotations

import dataclasses
import re
import signal
import time
from collections import deque
from typing import Any

import pytest

from plexisandbox import Limits, ModuleStats
from plexisandbox._metrics import metrics_text
from plexisandbox._watchdog import Sample, _Track, check_limits
from plexisandbox._worker import ExitInfo
from plexisandbox.interfaces import ModuleState

MIB = 1024 * 1024


def _exit(cause: str, **kw: Any) -> ExitInfo:
    base: dict[str, Any] = {
        "cause": cause,
        "exit_code": None,
        "signal": None,
        "reason": "",
        "at": time.time(),
        "output_tail": (),
    }
    base.update(kw)
    return ExitInfo(**base)


@pytest.mark.parametrize(
    ("info", "label"),
    [
        (_exit("clean", exit_code=0), "clean"),
        (_exit("crash", exit_code=3), "module_error"),
        (_exit("crash", exit_code=1, output_tail=("x", "MemoryError")), "memory_limit"),
        (_exit("crash", exit_code=69), "protocol"),
        (_exit("crash", exit_code=71), "failed_start"),
        (_exit("signal", signal=signal.SIGSEGV), "signal:SIGSEGV"),
        (_exit("signal", signal=signal.SIGKILL), "signal:SIGKILL"),
        (_exit("limit", signal=signal.SIGXCPU, limit="cpu_seconds"), "cpu_rlimit"),
        (_exit("limit", signal=signal.SIGKILL, limit="memory_mb"), "watchdog:memory_mb"),
        (_exit("limit", signal=signal.SIGKILL, limit="threads"), "watchdog:threads"),
        (_exit("protocol", signal=signal.SIGKILL), "protocol"),
        (_exit("unresponsive", signal=signal.SIGKILL), "unresponsive"),
        (_exit("failed_start", signal=signal.SIGKILL), "failed_start"),
        (_exit("killed", signal=signal.SIGKILL), "killed"),
    ],
)
def test_exit_label_classifies_every_cause(info: ExitInfo, label: str) -> None:
    assert info.label == label


def _sample(**kw: Any) -> Sample:
    base: dict[str, Any] = {
        "at": 100.0,
        "rss_bytes": 30 * MIB,
        "uss_bytes": None,
        "cpu_seconds": 1.0,
        "cpu_percent": 10.0,
        "threads": 3,
        "open_fds": 10,
    }
    base.update(kw)
    return Sample(**base)


def _covered(window: float) -> _Track:
    """A sampler track whose CPU history already spans `window` seconds before `at`."""
    track = _Track.__new__(_Track)
    track.cpu = deque([(100.0 - window, 0.0)])
    return track


@pytest.mark.parametrize(
    ("sample", "limit"),
    [
        (_sample(rss_bytes=65 * MIB), "memory_mb"),
        (_sample(threads=17), "threads"),
        (_sample(open_fds=32), "open_files"),  # all of RLIMIT_NOFILE in use
        (_sample(cpu_seconds=61.0), "cpu_seconds"),
        (_sample(cpu_percent=80.0), "cpu_percent"),
    ],
)
def test_check_limits_names_the_limit_with_observed_and_threshold(
    sample: Sample, limit: str
) -> None:
    limits = Limits(memory_mb=64, threads=16, open_files=32, cpu_seconds=60, cpu_percent=50)
    breach = check_limits(limits, sample, _covered(limits.cpu_window))
    assert breach is not None
    name, observed, threshold, hint = breach
    assert name == limit
    assert threshold == getattr(limits, limit)
    assert observed >= threshold
    assert f"Limits({limit}=" in hint


def test_check_limits_passes_a_sample_within_limits() -> None:
    assert check_limits(Limits(), _sample(), _covered(10.0)) is None


def test_cpu_percent_waits_for_a_full_window_and_is_off_in_debug_mode() -> None:
    limits = Limits(cpu_percent=50, cpu_window=5.0)
    hot = _sample(cpu_percent=100.0)
    assert check_limits(limits, hot, _covered(2.0)) is None  # only 2 s seen so far
    assert check_limits(limits, hot, _covered(5.0)) is not None
    assert check_limits(limits, hot, _covered(5.0), debug=True) is None
    assert check_limits(Limits(cpu_percent=0), hot, _covered(5.0)) is None  # 0 disables


@pytest.mark.parametrize(
    "field", ["ping_interval", "ping_timeout", "ping_failures", "stall_timeout"]
)
def test_health_limits_are_never_unlimited(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def _stats(name: str, **kw: Any) -> ModuleStats:
    known: dict[str, Any] = {
        "name": name,
        "pid": 123,
        "state": ModuleState.ACTIVE,
        "confinement_layers": (),
        "missing_layers": (),
        "last_exit": None,
    }
    values: dict[str, Any] = {}
    for field in dataclasses.fields(ModuleStats):
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            values[field.name] = known.get(field.name, 0)
    values.update(kw)
    return ModuleStats(**values)


_LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\\n]|\\.)*",?)+\})? -?[0-9.e+-]+$')


def test_metrics_text_renders_and_escapes() -> None:
    text = metrics_text(
        {
            "a": _stats("a", calls=5, rss_bytes=1234, latency_p50_ms=2.0, latency_p99_ms=9.5),
            'we"ird\\name': _stats(
                'we"ird\\name', pid=None, state=ModuleState.FAILED, last_exit_cause="signal:SIGKILL"
            ),
        }
    )
    lines = text.splitlines()
    assert text.endswith("\n")
    for line in lines:
        assert line.startswith("# ") or _LINE.match(line), line
    assert 'plexisandbox_module_calls_total{module="a"} 5' in lines
    assert 'plexisandbox_module_resident_memory_bytes{module="a"} 1234' in lines
    assert 'plexisandbox_module_call_latency_seconds{module="a",quantile="0.99"} 0.0095' in lines
    assert 'plexisandbox_module_up{module="we\\"ird\\\\name"} 0' in lines
    assert (
        'plexisandbox_module_last_exit_info{module="we\\"ird\\\\name",cause="signal:SIGKILL"} 1'
        in lines
    )
    # No reading yet: left out, not reported as zero.
    assert not any(line.startswith("plexisandbox_module_threads{") for line in lines)
    # Every family is declared once.
    types = [line for line in lines if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
