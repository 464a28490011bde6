"""Event bus throughput: events/s from the host to N subscribed modules (asyncio and trio).

    .venv/bin/python benchmarks/events.py [--events 5000] [--subscribers 1 4 8]

Reports events emitted per second and deliveries (event × subscriber) handled per second,
next to a baseline measured in the same run: the same number of small calls to one module.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plexisandbox import Limits, Supervisor  # noqa: E402

LISTENER = ROOT / "tests" / "modules" / "ev_listener.py"
ECHO = ROOT / "examples" / "modules" / "echo.py"


async def _drained(handles: list) -> None:  # type: ignore[type-arg]
    while any(h._events_unacked for h in handles):  # noqa: ASYNC110 - polling across processes
        await anyio.sleep(0.001)


async def measure(events: int, subscribers: list[int]) -> None:
    async with Supervisor(limits=Limits(event_queue=events)) as sup:
        echo = await sup.load(ECHO)
        await echo.start()
        started = time.perf_counter()
        for i in range(events):
            await echo.call("echo", value=i)
        calls_s = events / (time.perf_counter() - started)
        print(f"  baseline: {calls_s:10.0f} sequential calls/s to one module")
        handles = []
        for count in subscribers:
            while len(handles) < count:
                h = await sup.load(f"{LISTENER}:Listener", name=f"sub{len(handles)}")
                await h.start()
                handles.append(h)
            dropped_before = sum(h.stats().events_dropped for h in handles)
            started = time.perf_counter()
            for i in range(events):
                await sup.emit("chat.bench", i)
            await _drained(handles)
            elapsed = time.perf_counter() - started
            dropped = sum(h.stats().events_dropped for h in handles) - dropped_before
            print(
                f"  {count:2d} subscribers: {events / elapsed:10.0f} events/s emitted, "
                f"{events * count / elapsed:10.0f} deliveries/s handled, dropped {dropped}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    for backend in ("asyncio", "trio"):
        print(f"{backend}:")
        anyio.run(measure, args.events, args.subscribers, backend=backend)


if __name__ == "__main__":
    main()
