"""Cost of confinement: worker start-up and call round trip, confined vs unconfined, one run.

    .venv/bin/python benchmarks/confinement_cost.py [--starts 20] [--calls 2000] [--zygote]
        [--backend asyncio]

"confined" is the default strict policy (rlimits, own uid + mount mask, network namespace,
no_new_privs, Landlock, seccomp). "unconfined" is the same policy with every layer switched
off (strict=False, layers=(): `plexisandbox._bench_suite.unconfined()`), so both runs share
the same launcher, handshake and channel: the difference is the confinement alone.
Start-up = `load()` + `start()` of a small module (a fresh interpreter, or a fork of the
zygote with `--zygote`; the handshake, confinement, host verification, import); round trip =
one `echo` call; inside the worker, the time of one `getppid()` (the seccomp filter runs on
every syscall) and one `stat()` of a stdlib file (plus Landlock's path check).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plexisandbox._bench_common import BENCH_MODULES  # noqa: E402
from plexisandbox._bench_suite import confinement_overhead  # noqa: E402
from plexisandbox.interfaces import ModulePermissions  # noqa: E402


async def _run(starts: int, calls: int, zygote: bool) -> None:
    # Interleaved rounds (A B B A) inside confinement_overhead(), so that warm-up, caches and
    # CPU frequency favour neither; the same code `plexisandbox bench` runs.
    results = await confinement_overhead(starts, calls, syscalls=200_000, zygote=zygote)
    print(
        f"{'':12}{'start median':>14}{'start p90':>12}{'call median':>14}{'call p99':>12}"
        f"{'getppid()':>12}{'stat()':>10}"
    )
    for label in ("unconfined", "confined"):
        r = results[label]
        print(
            f"{label:12}{r['start_p50_ms']:11.1f} ms{r['start_p90_ms']:9.1f} ms"
            f"{r['rtt_p50_us']:11.0f} µs{r['rtt_p99_us']:9.0f} µs"
            f"{r['getppid_ns']:9.0f} ns{r['stat_ns']:7.0f} ns"
        )
    cost = results["cost"]
    print(
        f"cost of confinement: {cost['start_ms']:+.1f} ms per start (median), "
        f"{cost['rtt_us']:+.0f} µs per call (median), {cost['getppid_ns']:+.0f} ns per syscall, "
        f"{cost['stat_ns']:+.0f} ns per path lookup"
    )
    print(f"confined layers: {', '.join(results['confined']['layers'])}")
    print(f"unconfined layers: {', '.join(results['unconfined']['layers']) or '(none)'}")


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
        ModulePermissions(),
        Limits(),
        facts,
        module="probe",
        module_paths=(str(BENCH_MODULES.parent),),
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
    parser.add_argument("--zygote", action="store_true", help="fork workers from the zygote")
    args = parser.parse_args()
    print(
        f"backend {args.backend}, {args.starts} starts and {args.calls} calls per variant "
        f"(two interleaved rounds each), {'zygote' if args.zygote else 'launched'} workers"
    )
    anyio.run(_run, args.starts, args.calls, args.zygote, backend=args.backend)
    imported, applied = apply_cost()
    print(
        f"inside the worker: importing the confinement code {imported:.1f} ms, "
        f"confine.apply() {applied:.1f} ms (medians of 10 fresh interpreters)"
    )


if __name__ == "__main__":
    main()
