"""Round-trip time of one small call through the sandbox, against a raw-pipe baseline.

Both are measured in the same run, on the same machine, one call at a time:

* **baseline** — the least any process boundary costs: a child interpreter that reads a
  length-prefixed msgpack frame from a blocking pipe, decodes it, encodes an answer and writes
  it back; the parent does the same with blocking `os.read`/`os.write`. No event loop, no
  sandbox, no checks.
* **sandbox** — `await handle.call("echo", value=1)` on the example echo module, through the
  whole stack: the supervisor's anyio loop, the bounded decoder and shape checks, the worker's
  asyncio serve loop (and, for `echo_sync`, a worker thread), confinement in force.

The result is reported as ratios to the baseline (median and p99), under asyncio and trio, so
it says what the sandbox costs on *this* machine rather than in absolute microseconds.

    .venv/bin/python benchmarks/rtt.py                # both backends, 5000 calls each
    .venv/bin/python benchmarks/rtt.py --calls 20000 --backend trio --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from plexisandbox._bench_baselines import RawPipe
from plexisandbox._bench_common import percentile

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "modules" / "echo.py"


def _summary(samples_ns: list[int]) -> dict[str, float]:
    us = [s / 1000 for s in samples_ns]
    return {
        "median_us": round(statistics.median(us), 2),
        "p99_us": round(percentile(us, 0.99), 2),
        "calls": len(us),
    }


def measure_baseline(calls: int, warmup: int) -> dict[str, float]:
    """Blocking pipe + msgpack round trips to a fresh child interpreter (the same baseline
    `plexisandbox bench` measures)."""
    raw = RawPipe()
    samples: list[int] = []
    try:
        for i in range(warmup + calls):
            started = time.perf_counter_ns()
            answer = raw.roundtrip(i)
            elapsed = time.perf_counter_ns() - started
            assert answer == [35, i, i], answer
            if i >= warmup:
                samples.append(elapsed)
    finally:
        raw.close()
    return _summary(samples)


async def measure_sandbox(calls: int, warmup: int) -> dict[str, dict[str, float]]:
    """Sequential small calls through a Supervisor to the echo module."""
    from plexisandbox import Supervisor

    results: dict[str, dict[str, float]] = {}
    async with Supervisor() as sup:
        handle = await sup.load(ECHO)
        await handle.start()
        for method in ("echo", "echo_sync"):
            samples: list[int] = []
            for i in range(warmup + calls):
                started = time.perf_counter_ns()
                value = await handle.call(method, value=1, timeout=10)
                elapsed = time.perf_counter_ns() - started
                assert value == 1
                if i >= warmup:
                    samples.append(elapsed)
            results[method] = _summary(samples)
        layers = handle.stats().confinement_layers
        await handle.shutdown()
    results["_layers"] = {"layers": list(layers)}  # type: ignore[dict-item]
    return results


def run(backends: list[str], calls: int, warmup: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for backend in backends:
        # The baseline right before each backend's run, so both see the same machine state.
        baseline = measure_baseline(calls, warmup)
        sandbox = anyio.run(measure_sandbox, calls, warmup, backend=backend)
        layers = sandbox.pop("_layers")["layers"]
        for method, stats in sandbox.items():
            rows.append(
                {
                    "backend": backend,
                    "method": method,
                    "sandbox_median_us": stats["median_us"],
                    "sandbox_p99_us": stats["p99_us"],
                    "baseline_median_us": baseline["median_us"],
                    "baseline_p99_us": baseline["p99_us"],
                    "ratio_median": round(stats["median_us"] / baseline["median_us"], 2),
                    "ratio_p99": round(stats["p99_us"] / baseline["p99_us"], 2),
                    "calls": stats["calls"],
                    "confinement": layers,
                }
            )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'backend':<8} {'method':<10} {'sandbox median':>15} {'p99':>10} "
        f"{'baseline median':>16} {'p99':>10} {'ratio median':>13} {'ratio p99':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['backend']:<8} {r['method']:<10} {r['sandbox_median_us']:>12.1f} µs "
            f"{r['sandbox_p99_us']:>7.1f} µs {r['baseline_median_us']:>13.1f} µs "
            f"{r['baseline_p99_us']:>7.1f} µs {r['ratio_median']:>12.2f}x {r['ratio_p99']:>9.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="measured calls per series")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured calls first")
    parser.add_argument(
        "--backend", choices=("asyncio", "trio", "both"), default="both", help="anyio backend"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    rows = run(backends, args.calls, args.warmup)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"small-call round trip, {args.calls} sequential calls per series "
            f"(+{args.warmup} warm-up), Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        print(f"confinement in force: {', '.join(rows[0]['confinement']) or 'none'}")
        print(_table(rows))
        print("ratio = sandbox / baseline (raw blocking pipe + msgpack to a child interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
