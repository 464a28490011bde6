"""Cold start: from `load()` to the first answered call, forked by the zygote vs launched.

Both modes run in the same process, interleaved one load each, so machine noise hits them
alike. One sample is `await sup.load(ECHO)` + `await handle.start()` + the first
`await handle.call("echo")` of a fully confined worker (every layer this kernel offers:
rlimits, uid or user namespace, network namespace, no_new_privs, Landlock, seccomp). The
worker is unloaded after each sample (not timed). The zygote itself is started before the
first sample (it is a one-off per supervisor).

Also printed: where the time goes (host clock at HELLO, CONFINED, READY, configured,
started, first answer), the same sample with `validate=False` (no contract validation,
which is host-side work independent of how the process starts), and the unique memory (USS)
of an idle worker in each mode.

    .venv/bin/python benchmarks/cold_start.py                 # 100 samples per mode, asyncio
    .venv/bin/python benchmarks/cold_start.py -n 300 --backend trio --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import anyio

from plexisandbox import Supervisor, _worker

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "modules" / "echo.py"
PHASES = ("HELLO", "CONFINED", "READY", "configured", "started", "first call")

_marks: list[tuple[str, float]] = []
_expect = _worker.WorkerConnection._expect


async def _marking_expect(self: Any, op: Any, timeout: float, stage: str) -> Any:
    result = await _expect(self, op, timeout, stage)
    _marks.append((op.name, time.perf_counter()))
    return result


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def _one(sup: Supervisor, i: int, validate: bool) -> tuple[float, dict[str, float]]:
    _marks.clear()
    started = time.perf_counter()
    handle = await sup.load(ECHO, name=f"cold{i}", validate=validate)
    configured = time.perf_counter()
    await handle.start()
    running = time.perf_counter()
    assert await handle.call("echo", value=i) == i
    done = time.perf_counter()
    # Only the last worker's handshake counts (a module whose declaration differs from the
    # baseline starts two; echo starts one).
    marks = dict(_marks[-3:])
    phases = {name: (marks[name] - started) * 1e3 for name in ("HELLO", "CONFINED", "READY")}
    phases["configured"] = (configured - started) * 1e3
    phases["started"] = (running - started) * 1e3
    phases["first call"] = (done - started) * 1e3
    await sup.unload(handle.name)
    return done - started, phases


async def _idle_uss(sup: Supervisor, count: int = 10) -> float:
    """Median unique memory (USS, MiB) of `count` echo workers, idle after one call each."""
    import psutil

    handles = []
    for i in range(count):
        handle = await sup.load(ECHO, name=f"idle{i}")
        await handle.start()
        await handle.call("echo", value=i)
        handles.append(handle)
    await anyio.sleep(1.0)
    uss = [psutil.Process(h.pid).memory_full_info().uss / 2**20 for h in handles if h.pid]
    for handle in handles:
        await sup.unload(handle.name)
    return round(statistics.median(uss), 2)


async def _run(n: int, warmup: int) -> dict[str, Any]:
    _worker.WorkerConnection._expect = _marking_expect  # type: ignore[method-assign]
    results: dict[str, Any] = {}
    async with Supervisor(zygote=False) as plain, Supervisor(zygote=True) as zygote:
        sups = {"plain": plain, "zygote": zygote}
        for validate in (True, False):
            key = "" if validate else "_novalidate"
            totals: dict[str, list[float]] = {m: [] for m in sups}
            phases: dict[str, list[dict[str, float]]] = {m: [] for m in sups}
            for i in range(warmup + n):
                for mode, sup in sups.items():
                    total, split = await _one(sup, i, validate)
                    if i >= warmup:
                        totals[mode].append(total * 1e3)
                        phases[mode].append(split)
            for mode in sups:
                results[f"{mode}{key}"] = {
                    "p50_ms": round(statistics.median(totals[mode]), 2),
                    "p99_ms": round(_pct(totals[mode], 0.99), 2),
                    "min_ms": round(min(totals[mode]), 2),
                    "phases_p50_ms": {
                        name: round(statistics.median(s[name] for s in phases[mode]), 2)
                        for name in PHASES
                    },
                }
        for mode, sup in sups.items():
            results[mode]["idle_uss_mib"] = await _idle_uss(sup)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="samples per mode (default 100)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = anyio.run(_run, args.n, args.warmup, backend=args.backend)
    machine = (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu Python "
        f"{platform.python_version()} {platform.system()} {platform.release()} "
        f"backend={args.backend} n={args.n}"
    )
    if args.json:
        print(json.dumps({"machine": machine, **results}, indent=2))
        return
    print(machine)
    print(f"{'load+start+first call':28} {'p50 ms':>8} {'p99 ms':>8} {'min ms':>8}")
    for mode, r in results.items():
        print(f"  {mode:26} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['min_ms']:8.2f}")
    print("p50 host clock since load() (ms): " + " → ".join(PHASES))
    for mode, r in results.items():
        print(f"  {mode:26} " + "  ".join(f"{r['phases_p50_ms'][p]:6.2f}" for p in PHASES))
    print(
        "idle USS per worker (MiB, p50 of 10): "
        + "  ".join(f"{mode} {results[mode]['idle_uss_mib']:.2f}" for mode in ("plain", "zygote"))
    )
    plain, zygote = results["plain"]["p50_ms"], results["zygote"]["p50_ms"]
    print(f"zygote speed-up at p50: {plain / zygote:.1f}× ({plain - zygote:.1f} ms saved)")


if __name__ == "__main__":
    main()
