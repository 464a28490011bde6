"""Cost of confinement: worker start-up and call round trip, confined vs unconfined, one run.

    .venv/bin/python benchmarks/confinement_cost.py [--starts 20] [--calls 2000] [--backend asyncio]

"confined" is the default strict policy (rlimits, own uid + mount mask, network namespace,
no_new_privs, Landlock, seccomp). "unconfined" is the same policy with every layer switched
off (strict=False, layers=()), so both runs share the same launcher, handshake and channel:
the difference is the confinement alone. Start-up = `load()` + `start()` of a small module
(a fresh interpreter, the handshake, confinement, host verification, import); round trip =
one `echo` call; inside the worker, the time of one `getppid()` (the seccomp filter runs on
every syscall) and one `stat()` of a stdlib file (plus Landlock's path check).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plexisandbox import Supervisor  # noqa: E402
from plexisandbox._handle import ModuleHandle  # noqa: E402
from plexisandbox._policy import SandboxPolicy  # noqa: E402
from plexisandbox.interfaces import ModulePermissions  # noqa: E402

PROBE = ROOT / "benchmarks" / "modules" / "syscall_probe.py"
_confined_policy_for = ModuleHandle._policy_for


def _unconfined_policy_for(self: ModuleHandle, declared: ModulePermissions) -> SandboxPolicy:
    policy = _confined_policy_for(self, declared)
    return dataclasses.replace(policy, layers=(), strict=False)


def _ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def _measure(starts: int, calls: int) -> dict[str, Any]:
    startup: list[float] = []
    rtt: list[float] = []
    layers: tuple[str, ...] = ()
    inside: dict[str, float] = {}
    async with Supervisor() as sup:
        for i in range(starts):
            began = time.perf_counter()
            handle = await sup.load(PROBE, name=f"probe{i}", validate=False)
            await handle.start()
            startup.append(time.perf_counter() - began)
            layers = tuple(handle.confinement["layers"])
            if i == 0:
                for _ in range(100):  # warm-up
                    await handle.call("echo", value="x")
                for _ in range(calls):
                    began = time.perf_counter()
                    await handle.call("echo", value="x")
                    rtt.append(time.perf_counter() - began)
                inside = await handle.call("syscalls", n=200_000, timeout=60)
            await sup.unload(handle.name)
    return {
        "layers": layers,
        "start_median_ms": statistics.median(startup) * 1000,
        "start_p90_ms": _ms(startup, 0.9),
        "rtt_median_us": statistics.median(rtt) * 1e6,
        "rtt_p99_us": _ms(rtt, 0.99) * 1000,
        "getppid_ns": inside["getppid_ns"],
        "stat_ns": inside["stat_ns"],
    }


async def _run(starts: int, calls: int) -> None:
    # Interleaved rounds (A B B A) so that warm-up, caches and CPU frequency favour neither.
    samples: dict[str, list[dict[str, Any]]] = {"unconfined": [], "confined": []}
    variants = {"unconfined": _unconfined_policy_for, "confined": _confined_policy_for}
    for label in ("unconfined", "confined", "confined", "unconfined"):
        ModuleHandle._policy_for = variants[label]  # type: ignore[method-assign]
        samples[label].append(await _measure(starts // 2 or 1, calls // 2 or 1))
    ModuleHandle._policy_for = _confined_policy_for  # type: ignore[method-assign]
    results = {
        label: {
            key: (runs[0][key] if key == "layers" else statistics.mean(r[key] for r in runs))
            for key in runs[0]
        }
        for label, runs in samples.items()
    }
    print(
        f"{'':12}{'start median':>14}{'start p90':>12}{'call median':>14}{'call p99':>12}"
        f"{'getppid()':>12}{'stat()':>10}"
    )
    for label, r in results.items():
        print(
            f"{label:12}{r['start_median_ms']:11.1f} ms{r['start_p90_ms']:9.1f} ms"
            f"{r['rtt_median_us']:11.0f} µs{r['rtt_p99_us']:9.0f} µs"
            f"{r['getppid_ns']:9.0f} ns{r['stat_ns']:7.0f} ns"
        )
    c, u = results["confined"], results["unconfined"]
    print(
        f"cost of confinement: {c['start_median_ms'] - u['start_median_ms']:+.1f} ms per start "
        f"(median), {c['rtt_median_us'] - u['rtt_median_us']:+.0f} µs per call (median), "
        f"{c['getppid_ns'] - u['getppid_ns']:+.0f} ns per syscall, "
        f"{c['stat_ns'] - u['stat_ns']:+.0f} ns per path lookup"
    )
    print(f"confined layers: {', '.join(c['layers'])}")
    print(f"unconfined layers: {', '.join(u['layers']) or '(none)'}")


_APPLY = """
import json, sys, time
sys.path[:0] = sys.argv[2:]
wire = json.loads(sys.argv[1])
import asyncio, msgpack, plexisandbox.interfaces  # the worker imports these in any case
began = time.perf_counter()
import worker.confine as confine  # includes loading libseccomp through pyseccomp
imported = time.perf_counter()
confine.apply(wire)
print((imported - began) * 1000, (time.perf_counter() - imported) * 1000)
"""


def apply_cost(runs: int = 10) -> tuple[float, float]:
    """Median milliseconds of (importing the confinement code, `confine.apply()`), each in a
    fresh interpreter that has already imported what every worker imports anyway."""
    import json
    import subprocess

    from plexisandbox import Limits
    from plexisandbox._launcher import library_paths
    from plexisandbox._policy import HostFacts, derive_policy
    from plexisandbox._uids import UidAllocator

    facts = HostFacts.detect()
    policy = derive_policy(
        ModulePermissions(), Limits(), facts, module="probe", module_paths=(str(PROBE.parent),)
    )
    allocator = UidAllocator()
    times: list[tuple[float, float]] = []
    for _ in range(runs):
        wire = policy.to_wire()
        lease = allocator.acquire() if "uid" in policy.layers else None
        if lease is not None:
            wire["uid"] = wire["gid"] = lease.uid
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-B",
                    "-c",
                    _APPLY,
                    json.dumps(wire),
                    *library_paths(),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=dict(policy.env),
            )
        finally:
            if lease is not None:
                lease.release()
        imported, applied = out.stdout.strip().splitlines()[-1].split()
        times.append((float(imported), float(applied)))
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    print(
        f"backend {args.backend}, {args.starts} starts and {args.calls} calls per variant "
        "(two interleaved rounds each)"
    )
    anyio.run(_run, args.starts, args.calls, backend=args.backend)
    imported, applied = apply_cost()
    print(
        f"inside the worker: importing the confinement code {imported:.1f} ms, "
        f"confine.apply() {applied:.1f} ms (medians of 10 fresh interpreters)"
    )


if __name__ == "__main__":
    main()
