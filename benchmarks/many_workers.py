"""Scale: N fully confined workers alive at once, every one answering a call; memory per worker.

Loads N copies of a small echo module (each its own confined worker: own uid or user namespace,
network namespace, Landlock, seccomp), started from the zygote (default) or launched
(`--plain`), `--concurrency` loads at a time. Then every module answers one call, all calls
in flight together, and each answer is checked. Reported: time to load them all, the call
wave, and memory: per-worker USS/PSS/RSS (psutil, after the workers sat idle for a second),
the zygote's own footprint, and the drop of the machine's MemAvailable per worker (what a
worker really costs, kernel objects such as its network namespace included).

    .venv/bin/python benchmarks/many_workers.py              # 500 workers from the zygote
    .venv/bin/python benchmarks/many_workers.py -n 100 --plain --json

The measurement is `plexisandbox._bench_suite.many_workers()`, which `plexisandbox bench` runs
too (200 workers, 20 with --quick).
"""

from __future__ import annotations

import argparse
import json

import anyio

from plexisandbox._bench_common import machine
from plexisandbox._bench_suite import many_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="workers (default 500)")
    parser.add_argument("--plain", action="store_true", help="launch workers, no zygote")
    parser.add_argument("--concurrency", type=int, default=8, help="loads in flight")
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = anyio.run(
        lambda: many_workers(args.n, zygote=not args.plain, concurrency=args.concurrency),
        backend=args.backend,
    )
    results["machine"] = f"{machine()} backend={args.backend}"
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(results["machine"])
    mode = "zygote" if results["zygote"] else "plain"
    print(
        f"{results['workers']} workers ({mode}): all loaded+started in {results['load_all_s']} s "
        f"(p50 {results['load_p50_ms']} ms each, {args.concurrency} at a time); "
        f"{results['alive']} alive; {results['answered']}/{results['workers']} answered a call "
        f"(wave of {results['workers']} concurrent calls: {results['call_wave_ms']} ms)"
    )
    print(f"confinement: {', '.join(results['confinement_layers'])}")
    mem = results["memory"]
    print(
        f"idle per worker: USS median {mem['uss_mib_median']} MiB (mean {mem['uss_mib_mean']}, "
        f"max {mem['uss_mib_max']}), PSS mean {mem['pss_mib_mean']} MiB, RSS median "
        f"{mem['rss_mib_median']} MiB; MemAvailable drop "
        f"{results['mem_available_drop_mib_per_worker']} MiB per worker"
    )
    if "zygote_rss_mib" in results:
        print(f"zygote: RSS {results['zygote_rss_mib']} MiB, USS {results['zygote_uss_mib']} MiB")
    print(f"shutdown of all: {results['shutdown_s']} s")


if __name__ == "__main__":
    main()
