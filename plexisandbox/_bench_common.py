"""Host side: small helpers shared by `plexisandbox bench` and the scripts in benchmarks/."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "BENCH_MODULES",
    "EXTRA_HINT",
    "machine",
    "mem_available",
    "percentile",
    "place",
    "summary_us",
    "time_calls",
]

#: The modules the suite loads, shipped with the package (see `_bench_modules`).
BENCH_MODULES = Path(__file__).resolve().parent / "_bench_modules.py"
#: What to install for the optional parts of the suite (plots, the execnet baseline).
EXTRA_HINT = "pip install 'plexisandbox[bench]'"


def percentile(samples: Sequence[float], p: float) -> float:
    """The `p` quantile (0..1) of `samples`, nearest rank; no interpolation."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def summary_us(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 and p99 in microseconds of samples in seconds, rounded to 0.01 µs."""
    us = [s * 1e6 for s in samples_s]
    return {"p50": round(statistics.median(us), 2), "p99": round(percentile(us, 0.99), 2)}


def place(pid: int, cpu: int) -> None:
    """Every thread of process `pid` on `cpu` (affinity is per thread on Linux)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except ProcessLookupError:
            pass  # a thread that just ended


def time_calls(fn: Callable[[int], object], n: int) -> list[float]:
    """Seconds each of `n` calls `fn(i)` took."""
    samples = []
    clock = time.perf_counter
    for i in range(n):
        started = clock()
        fn(i)
        samples.append(clock() - started)
    return samples


def machine() -> str:
    """One line naming the machine, the interpreter and the kernel: print it with results."""
    try:
        import psutil

        memory = f" {psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:  # pragma: no cover - psutil is a dependency
        memory = ""
    return (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu{memory} "
        f"Python {platform.python_version()} {platform.system()} {platform.release()}"
    )


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")
