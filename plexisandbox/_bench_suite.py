"""Host side: the sandbox measurements of `plexisandbox bench`, also used by benchmarks/*.py.

Each function runs real, fully confined workers (every layer this kernel offers) of the small
modules in `_bench_modules` and returns plain data; printing is the caller's business. They
run under either anyio backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import psutil

from ._bench_common import BENCH_MODULES, mem_available, percentile, place, time_calls
from ._handle import ModuleHandle
from ._limits import Limits
from ._supervisor import Supervisor

__all__ = [
    "ECHO",
    "LISTENER",
    "PROBE",
    "call_path",
    "cold_start",
    "confinement_overhead",
    "events_rate",
    "many_workers",
    "unconfined",
]

ECHO = f"{BENCH_MODULES}:BenchEcho"
PROBE = f"{BENCH_MODULES}:BenchProbe"
LISTENER = f"{BENCH_MODULES}:BenchListener"
MIB = 2**20
PAYLOAD_SIZES = (64 * 1024, 1024 * 1024, 8 * 1024 * 1024)


def _forked(pid: int | None) -> bool:
    """Whether the worker was forked by a zygote rather than launched by this host: when the
    zygote cannot start, the supervisor launches workers instead (and logs it), which would
    silently turn a "zygote" figure into a launched one."""
    return pid is not None and psutil.Process(pid).ppid() != os.getpid()


def _uss_mib(pid: int | None) -> float:
    assert pid is not None, "the worker is not running"
    return round(psutil.Process(pid).memory_full_info().uss / MIB, 2)


async def call_path(
    n: int,
    *,
    window: int = 64,
    payloads: bool = True,
    payload_samples: int = 10,
    peers: dict[str, Callable[[int], object]] | None = None,
    worker_cpu: int | None = None,
) -> dict[str, Any]:
    """One launched worker of the echo module: sequential round trips (`rtt`, seconds),
    pipelined calls/s with `window` calls in flight (`throughput`), and the median round trip
    in ms of a bytes payload of each of `PAYLOAD_SIZES` (`payload_ms`).

    `peers` (name → one blocking round trip) are measured interleaved with the sandbox, in
    chunks of a few hundred calls (`peer_rtt`): on a shared machine the scheduling regime
    (both processes on one CPU, or a wake-up across CPUs each way) can change within
    seconds, and a ratio is only meaningful between samples taken under the same one.
    `worker_cpu` places every thread of the worker on that CPU (see _bench_placed)."""
    results: dict[str, Any] = {}
    peers = peers or {}
    async with Supervisor(zygote=False) as sup:
        handle = await sup.load(ECHO, name="echo")
        await handle.start()
        if worker_cpu is not None and handle.pid is not None:
            place(handle.pid, worker_cpu)
        for i in range(200):
            await handle.call("echo", value=i)
        clock = time.perf_counter
        rtt: list[float] = []
        peer_rtt: dict[str, list[float]] = {name: [] for name in peers}
        chunk = max(1, min(250, n // 4))
        while len(rtt) < n:
            for name, roundtrip in peers.items():
                peer_rtt[name] += time_calls(roundtrip, chunk)
            for i in range(chunk):
                started = clock()
                await handle.call("echo", value=i)
                rtt.append(clock() - started)
        results["rtt"] = rtt
        results["peer_rtt"] = peer_rtt

        total = n * 4
        per_task = total // window

        async def caller() -> None:
            for i in range(per_task):
                await handle.call("echo", value=i)

        started = clock()
        async with anyio.create_task_group() as tg:
            for _ in range(window):
                tg.start_soon(caller)
        results["throughput"] = per_task * window / (clock() - started)

        if payloads:
            results["payload_ms"] = {}
            for size in PAYLOAD_SIZES:
                blob = b"x" * size
                samples = []
                for _ in range(payload_samples):
                    started = clock()
                    echoed = await handle.call("echo", value=blob)
                    samples.append(clock() - started)
                assert len(echoed) == size
                results["payload_ms"][str(size)] = round(statistics.median(samples) * 1e3, 3)
        results["layers"] = list(handle.stats().confinement_layers)
    return results


async def cold_start(samples: int) -> dict[str, Any]:
    """Load + start + first call of a fully confined echo worker, launched (`plain`) and
    forked by the zygote (`zygote`), interleaved one sample each so machine noise hits both
    alike; seconds per sample. Then the idle USS (MiB) of one worker of each kind that has
    answered a call (`uss_mib`)."""
    times: dict[str, list[float]] = {"plain": [], "zygote": []}
    uss: dict[str, float] = {}
    launched = 0
    async with Supervisor(zygote=False) as plain, Supervisor(zygote=True) as forked:
        sups = {"plain": plain, "zygote": forked}
        # The zygote itself starts at the first load: a one-off per supervisor, not counted.
        warm = await forked.load(ECHO, name="warm")
        await forked.unload(warm.name)
        for i in range(samples):
            for kind, sup in sups.items():
                started = time.perf_counter()
                handle = await sup.load(ECHO, name=f"cold{i}")
                await handle.start()
                await handle.call("echo", value=i)
                times[kind].append(time.perf_counter() - started)
                if kind == "zygote" and not _forked(handle.pid):
                    launched += 1
                await sup.unload(handle.name)
        handles = {}
        for kind, sup in sups.items():
            handles[kind] = await sup.load(ECHO, name="idle")
            await handles[kind].start()
            await handles[kind].call("echo", value=1)
        await anyio.sleep(0.3)  # idle, as a worker sits between calls
        for kind, handle in handles.items():
            uss[kind] = _uss_mib(handle.pid)
    return {**times, "uss_mib": uss, "zygote_fallbacks": launched}


async def many_workers(
    n: int, *, zygote: bool = True, concurrency: int = 8, idle: float = 1.0
) -> dict[str, Any]:
    """N fully confined echo workers alive at once, every one answering a call: load time,
    the wave of N concurrent calls, and memory per worker (USS/PSS/RSS after `idle` seconds,
    and the drop of the machine's MemAvailable, kernel objects such as network namespaces
    included)."""
    before = mem_available()
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
        if zygote:
            results["zygote_fallbacks"] = sum(1 for h in handles if not _forked(h.pid))
        layer_sets = {h.stats().confinement_layers for h in handles}
        results["confinement_layers"] = sorted(set().union(*layer_sets))
        results["layer_sets"] = len(layer_sets)

        await anyio.sleep(idle)
        pids = [h.pid for h in handles if h.pid is not None]
        results["memory"] = await anyio.to_thread.run_sync(_memory, pids)
        results["mem_available_drop_mib_per_worker"] = round(
            (before - mem_available()) / MIB / max(1, len(pids)), 3
        )
        if sup.zygote is not None and sup.zygote.pid is not None:
            info = psutil.Process(sup.zygote.pid).memory_full_info()
            results["zygote_rss_mib"] = round(info.rss / MIB, 2)
            results["zygote_uss_mib"] = round(info.uss / MIB, 2)
        started = time.perf_counter()
    results["shutdown_s"] = round(time.perf_counter() - started, 2)
    return results


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


@contextlib.contextmanager
def unconfined() -> Iterator[None]:
    """Workers loaded inside this block get the same policy with every layer switched off
    (`layers=()`, `strict=False`): same launcher, handshake and channel, no confinement.

    The supervisor deliberately has no public switch for this — an unconfined worker is for
    measuring what confinement costs, never for running a module — so the benchmark swaps the
    handle's policy derivation for the duration of the block, in its own process. Only our own
    bench modules are loaded meanwhile.

    Raises:
        RuntimeError: the supervisor no longer derives policies where this expects.
    """
    confined = getattr(ModuleHandle, "_policy_for", None)
    if confined is None:
        raise RuntimeError("ModuleHandle._policy_for is gone: cannot start an unconfined worker")

    def policy_for(self: ModuleHandle, declared: Any) -> Any:
        return dataclasses.replace(confined(self, declared), layers=(), strict=False)

    ModuleHandle._policy_for = policy_for  # type: ignore[method-assign]
    try:
        yield
    finally:
        ModuleHandle._policy_for = confined  # type: ignore[method-assign]


async def _confinement_round(
    starts: int, calls: int, syscalls: int, *, zygote: bool
) -> dict[str, Any]:
    startup: list[float] = []
    rtt: list[float] = []
    layers: list[str] = []
    inside: dict[str, float] = {}
    fallbacks = 0
    async with Supervisor(zygote=zygote) as sup:
        if zygote:  # the zygote's own start is a one-off per supervisor, not counted
            warm = await sup.load(PROBE, name="warm", validate=False)
            await sup.unload(warm.name)
        for i in range(starts):
            began = time.perf_counter()
            handle = await sup.load(PROBE, name=f"probe{i}", validate=False)
            await handle.start()
            startup.append(time.perf_counter() - began)
            fallbacks += zygote and not _forked(handle.pid)
            if i == 0:
                layers = list(handle.stats().confinement_layers)
                for _ in range(100):  # warm-up
                    await handle.call("echo", value="x")
                for _ in range(calls):
                    began = time.perf_counter()
                    await handle.call("echo", value="x")
                    rtt.append(time.perf_counter() - began)
                inside = await handle.call("syscalls", n=syscalls, timeout=60)
            await sup.unload(handle.name)
    return {"layers": layers, "start": startup, "rtt": rtt, "fallbacks": fallbacks, **inside}


async def confinement_overhead(
    starts: int, calls: int, *, syscalls: int = 100_000, zygote: bool = True
) -> dict[str, Any]:
    """Start (load + start, ms) and call round trip (µs) of a confined vs an unconfined
    worker, and inside the worker the cost of one `getppid()` and one `stat()` (ns).

    Rounds run interleaved (unconfined, confined, confined, unconfined) so warm-up, caches and
    CPU frequency favour neither; each round does half the starts and calls.
    """
    runs: dict[str, list[dict[str, Any]]] = {"unconfined": [], "confined": []}
    for label in ("unconfined", "confined", "confined", "unconfined"):
        scope = unconfined() if label == "unconfined" else contextlib.nullcontext()
        with scope:
            runs[label].append(
                await _confinement_round(
                    max(1, starts // 2), max(1, calls // 2), syscalls, zygote=zygote
                )
            )
    out: dict[str, Any] = {
        "zygote": zygote,
        "zygote_fallbacks": sum(r["fallbacks"] for rounds in runs.values() for r in rounds),
    }
    for label, rounds in runs.items():
        start = [s for r in rounds for s in r["start"]]
        rtt = [s for r in rounds for s in r["rtt"]]
        out[label] = {
            "layers": rounds[0]["layers"],
            "start_p50_ms": round(statistics.median(start) * 1e3, 2),
            "start_p90_ms": round(percentile(start, 0.9) * 1e3, 2),
            "rtt_p50_us": round(statistics.median(rtt) * 1e6, 2),
            "rtt_p99_us": round(percentile(rtt, 0.99) * 1e6, 2),
            "getppid_ns": round(statistics.fmean(r["getppid_ns"] for r in rounds), 1),
            "stat_ns": round(statistics.fmean(r["stat_ns"] for r in rounds), 1),
        }
    c, u = out["confined"], out["unconfined"]
    out["cost"] = {
        "start_ms": round(c["start_p50_ms"] - u["start_p50_ms"], 2),
        "rtt_us": round(c["rtt_p50_us"] - u["rtt_p50_us"], 2),
        "getppid_ns": round(c["getppid_ns"] - u["getppid_ns"], 1),
        "stat_ns": round(c["stat_ns"] - u["stat_ns"], 1),
    }
    return out


async def events_rate(
    events: int, subscribers: list[int], *, timeout: float = 60.0
) -> dict[str, Any]:
    """Events emitted by the host per second, and deliveries (event × subscriber) handled per
    second by that many listener modules; next to the same number of sequential calls to one
    module as a baseline. Done = every listener's own count says it handled the burst."""
    results: dict[str, Any] = {"events": events, "by_subscribers": {}}
    async with Supervisor(limits=Limits(event_queue=max(1000, events))) as sup:
        echo = await sup.load(ECHO, name="echo")
        await echo.start()
        started = time.perf_counter()
        for i in range(events):
            await echo.call("echo", value=i)
        results["baseline_calls_s"] = round(events / (time.perf_counter() - started))
        handles: list[ModuleHandle] = []
        for count in sorted(subscribers):
            while len(handles) < count:
                handle = await sup.load(LISTENER, name=f"sub{len(handles)}")
                await handle.start()
                handles.append(handle)
            counts = [await h.call("count") for h in handles]
            dropped_before = sum(h.stats().events_dropped for h in handles)
            started = time.perf_counter()
            for i in range(events):
                await sup.emit("bench.tick", i)
            with anyio.fail_after(timeout):
                while True:
                    seen = [await h.call("count") for h in handles]
                    dropped = sum(h.stats().events_dropped for h in handles) - dropped_before
                    if sum(seen) - sum(counts) + dropped >= events * count:
                        break
                    await anyio.sleep(0.001)
            elapsed = time.perf_counter() - started
            results["by_subscribers"][str(count)] = {
                "events_s": round(events / elapsed),
                "deliveries_s": round(events * count / elapsed),
                "dropped": dropped,
            }
    return results
