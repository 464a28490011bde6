"""Scale: N fully confined workers alive at once, every one answering a call; memory per worker.

Loads N copies of the echo module (each its own confined worker: own uid or user namespace,
network namespace, Landlock, seccomp), started from the zygote (default) or launched
(`--plain`), `--concurrency` loads at a time. Then every module answers one call, all calls
in flight together, and each answer is checked. Reported: time to load them all, the call
wave, and memory: per-worker USS/PSS/RSS (psutil, after the workers sat idle for a second),
the zygote's own footprint, and the drop of the machine's MemAvailable per worker (what a
worker really costs, kernel objects such as its network namespace included).

    .venv/bin/python benchmarks/many_workers.py              # 500 workers from the zygote
    .venv/bin/python benchmarks/many_workers.py -n 100 --plain --json
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
import psutil

from plexisandbox import ModuleHandle, Supervisor

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "modules" / "echo.py"
MIB = 2**20


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _memory(pids: list[int]) -> dict[str, float]:
    uss, pss, rss = [], [], []
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        uss.append(info.uss / MIB)
        pss.append(info.pss / MIB)
        rss.append(info.rss / MIB)
    return {
        "uss_mib_median": round(statistics.median(uss), 3),
        "uss_mib_mean": round(statistics.fmean(uss), 3),
        "uss_mib_max": round(max(uss), 3),
        "pss_mib_mean": round(statistics.fmean(pss), 3),
        "rss_mib_median": round(statistics.median(rss), 3),
        "uss_mib_total": round(sum(uss), 1),
    }


async def _run(n: int, zygote: bool, concurrency: int) -> dict[str, Any]:
    before = _mem_available()
    results: dict[str, Any] = {"workers": n, "zygote": zygote}
    async with Supervisor(zygote=zygote) as sup:
        handles: list[ModuleHandle] = []
        load_times: list[float] = []
        gate = anyio.Semaphore(concurrency)

        async def load(i: int) -> None:
            async with gate:
                started = time.perf_counter()
                handle = await sup.load(ECHO, name=f"echo{i}")
                await handle.start()
                load_times.append(time.perf_counter() - started)
                handles.append(handle)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(load, i)
        results["load_all_s"] = round(time.perf_counter() - started, 2)
        results["load_p50_ms"] = round(statistics.median(load_times) * 1e3, 2)

        answers: dict[str, Any] = {}

        async def call(handle: ModuleHandle) -> None:
            answers[handle.name] = await handle.call("echo", value=handle.name, timeout=60)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(call, handle)
        results["call_wave_ms"] = round((time.perf_counter() - started) * 1e3, 1)
        results["answered"] = sum(answers.get(h.name) == h.name for h in handles)
        results["alive"] = sum(1 for h in handles if h.pid is not None)
        layers = {h.stats().confinement_layers for h in handles}
        results["confinement_layers"] = sorted(set().union(*layers))
        results["layer_sets"] = len(layers)

        await anyio.sleep(1.0)  # idle, as they would sit between calls
        pids = [h.pid for h in handles if h.pid is not None]
        results["memory"] = await anyio.to_thread.run_sync(_memory, pids)
        results["mem_available_drop_mib_per_worker"] = round(
            (before - _mem_available()) / MIB / max(1, len(pids)), 3
        )
        if sup.zygote is not None and sup.zygote.pid is not None:
            info = psutil.Process(sup.zygote.pid).memory_full_info()
            results["zygote_rss_mib"] = round(info.rss / MIB, 2)
            results["zygote_uss_mib"] = round(info.uss / MIB, 2)
        started = time.perf_counter()
    results["shutdown_s"] = round(time.perf_counter() - started, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="workers (default 500)")
    parser.add_argument("--plain", action="store_true", help="launch workers, no zygote")
    parser.add_argument("--concurrency", type=int, default=8, help="loads in flight")
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = anyio.run(_run, args.n, not args.plain, args.concurrency, backend=args.backend)
    results["machine"] = (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB Python {platform.python_version()} "
        f"{platform.system()} {platform.release()} backend={args.backend}"
    )
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
