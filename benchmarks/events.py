"""Event throughput: the host emits, N listener modules handle (asyncio and trio).

    .venv/bin/python benchmarks/events.py [--events 5000] [--subscribers 1 4 8]

Reports events emitted per second and deliveries (event × subscriber) handled per second,
next to a baseline measured in the same run: the same number of small calls to one module.
A burst counts as done when every listener's own count says it handled it. The measurement
is `plexisandbox._bench_suite.events_rate()`, which `plexisandbox bench` runs too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plexisandbox._bench_suite import events_rate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    for backend in ("asyncio", "trio"):
        print(f"{backend}:")
        result = anyio.run(events_rate, args.events, args.subscribers, backend=backend)
        print(f"  baseline: {result['baseline_calls_s']:10d} sequential calls/s to one module")
        for count, row in result["by_subscribers"].items():
            print(
                f"  {int(count):2d} subscribers: {row['events_s']:10d} events/s emitted, "
                f"{row['deliveries_s']:10d} deliveries/s handled, dropped {row['dropped']}"
            )


if __name__ == "__main__":
    main()
