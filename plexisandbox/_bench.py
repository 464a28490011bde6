"""Host side: `plexisandbox bench` — module overhead against baselines measured in the same run.

Machines here are shared and noisy, so every figure is reported next to baselines taken in the
same process tree a moment earlier: a blocking raw pipe with msgpack (the floor for a Python
peer), `multiprocessing.Pipe` (pickle), and an in-process direct call.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgpack

__all__ = ["add_parser", "run"]

ECHO = Path(__file__).resolve().parent.parent / "examples" / "modules" / "echo.py"

_RAW_CHILD = r"""
import os, sys, struct, msgpack
r, w = int(sys.argv[1]), int(sys.argv[2])
H = struct.Struct(">I")
buf = b""
while True:
    data = os.read(r, 1 << 20)
    if not data:
        break
    buf += data
    out = []
    while len(buf) >= 4:
        (n,) = H.unpack_from(buf)
        if len(buf) < 4 + n:
            break
        msg = msgpack.unpackb(buf[4:4 + n])
        buf = buf[4 + n:]
        body = msgpack.packb([35, msg[1], msg[3].get("value")])
        out.append(H.pack(len(body)) + body)
    if out:
        os.write(w, b"".join(out))
"""


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _summary(samples_s: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples_s]
    return {"p50": round(statistics.median(us), 2), "p99": round(_pct(us, 0.99), 2)}


def _frame(request_id: int) -> bytes:
    body: bytes = msgpack.packb([3, request_id, "echo", {"value": request_id}])
    return len(body).to_bytes(4, "big") + body


class _RawPipe:
    """The floor: a child Python process echoing msgpack frames over blocking pipes."""

    def __init__(self) -> None:
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RAW_CHILD, str(to_r), str(from_w)], pass_fds=(to_r, from_w)
        )
        os.close(to_r)
        os.close(from_w)

    def roundtrip(self, request_id: int) -> None:
        os.write(self.to_w, _frame(request_id))
        data = os.read(self.from_r, 65536)
        need = int.from_bytes(data[:4], "big") + 4
        while len(data) < need:
            data += os.read(self.from_r, 65536)
        msgpack.unpackb(data[4:need])

    def pipelined(self, total: int, window: int) -> float:
        started = time.perf_counter()
        sent = 0
        while sent < total:
            batch = min(window, total - sent)
            os.write(self.to_w, b"".join(_frame(sent + i) for i in range(batch)))
            got = 0
            buf = b""
            while got < batch:
                buf += os.read(self.from_r, 1 << 20)
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                    n = int.from_bytes(buf[:4], "big")
                    msgpack.unpackb(buf[4 : 4 + n])
                    buf = buf[4 + n :]
                    got += 1
            sent += batch
        return total / (time.perf_counter() - started)

    def close(self) -> None:
        os.close(self.to_w)
        self.proc.wait()
        os.close(self.from_r)


def _mp_child(conn: Any) -> None:
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        conn.send(msg)


def _time_calls(fn: Callable[[int], None], n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    return samples


def _baselines(n: int) -> dict[str, Any]:
    raw = _RawPipe()
    try:
        _time_calls(raw.roundtrip, 200)
        raw_rtt = _time_calls(raw.roundtrip, n)
        raw_tput = raw.pipelined(n * 4, 64)
    finally:
        raw.close()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_mp_child, args=(child,), daemon=True)
    proc.start()
    try:

        def mp_roundtrip(i: int) -> None:
            parent.send(("echo", {"value": i}))
            parent.recv()

        _time_calls(mp_roundtrip, 200)
        mp_rtt = _time_calls(mp_roundtrip, n)
    finally:
        parent.close()
        proc.join(5)
    return {"raw_rtt": raw_rtt, "raw_tput": raw_tput, "mp_rtt": mp_rtt}


async def _sandbox(n: int, quick: bool) -> dict[str, Any]:
    import psutil

    from . import Supervisor
    from .interfaces import BaseModule

    # In-process: the module's own cost, no boundary at all.
    namespace: dict[str, Any] = {}
    exec(compile(ECHO.read_text(), str(ECHO), "exec"), namespace)  # trusted example, host side
    local: BaseModule = namespace["EchoModule"]()
    in_process = []
    for i in range(n):
        started = time.perf_counter()
        await local.call_method("echo", value=i)
        in_process.append(time.perf_counter() - started)

    results: dict[str, Any] = {"in_process": in_process}
    async with Supervisor(zygote=False) as sup:  # "plain" whatever PLEXISANDBOX_ZYGOTE says
        starts = []
        for i in range(5 if quick else 20):
            started = time.perf_counter()
            handle = await sup.load(ECHO, name=f"cold{i}")
            await handle.start()
            await handle.call("echo", value=1)
            starts.append(time.perf_counter() - started)
            await sup.unload(handle.name)
        results["cold_plain"] = starts
        async with Supervisor(zygote=True) as forked:
            starts = []
            for i in range(1 + (5 if quick else 20)):  # the first also starts the zygote
                started = time.perf_counter()
                handle = await forked.load(ECHO, name=f"zygote{i}")
                await handle.start()
                await handle.call("echo", value=1)
                starts.append(time.perf_counter() - started)
                await forked.unload(handle.name)
            results["cold_zygote"] = starts[1:]

        handle = await sup.load(ECHO, name="echo")
        await handle.start()
        for i in range(200):
            await handle.call("echo", value=i)
        rtt = []
        for i in range(n):
            started = time.perf_counter()
            await handle.call("echo", value=i)
            rtt.append(time.perf_counter() - started)
        results["sandbox_rtt"] = rtt

        total = n * 4
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(64):

                async def worker(count: int = total // 64) -> None:
                    for i in range(count):
                        await handle.call("echo", value=i)

                tg.start_soon(worker)
        results["sandbox_tput"] = total / (time.perf_counter() - started)

        for size in (64 * 1024, 1024 * 1024, 8 * 1024 * 1024):
            blob = b"x" * size
            samples = []
            for _ in range(3 if quick else 10):
                started = time.perf_counter()
                await handle.call("echo", value=blob)
                samples.append(time.perf_counter() - started)
            results.setdefault("payload_ms", {})[str(size)] = round(
                statistics.median(samples) * 1e3, 3
            )

        await anyio.sleep(0.2)
        pid = handle.pid
        assert pid is not None
        results["idle_uss_mib"] = round(psutil.Process(pid).memory_full_info().uss / 2**20, 2)
        results["layers"] = list(handle.stats().confinement_layers)
    return results


def run(args: argparse.Namespace) -> int:
    """Run the suite and print a table (or JSON)."""
    n = 500 if args.quick else 3000
    base = _baselines(n)
    backends = ["asyncio"] if args.quick else ["asyncio", "trio"]
    sandbox = {b: anyio.run(_sandbox, n, args.quick, backend=b) for b in backends}
    main = sandbox["asyncio"]
    raw50 = _summary(base["raw_rtt"])["p50"]
    out: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu "
        f"Python {platform.python_version()} {platform.system()} {platform.release()}",
        "rtt_p50_us": {
            "raw_pipe": raw50,
            "mp_pipe": _summary(base["mp_rtt"])["p50"],
            "in_process": _summary(main["in_process"])["p50"],
            "sandbox": _summary(main["sandbox_rtt"])["p50"],
        },
        "rtt_p99_us": {
            "raw_pipe": _summary(base["raw_rtt"])["p99"],
            "mp_pipe": _summary(base["mp_rtt"])["p99"],
            "in_process": _summary(main["in_process"])["p99"],
            "sandbox": _summary(main["sandbox_rtt"])["p99"],
        },
        "throughput_calls_s": {
            "raw_pipe": round(base["raw_tput"]),
            "sandbox": round(main["sandbox_tput"]),
        },
        "cold_start_p50_ms": {
            "plain": round(statistics.median(main["cold_plain"]) * 1e3, 2),
            "zygote": round(statistics.median(main["cold_zygote"]) * 1e3, 2),
        },
        "idle_uss_mib": main["idle_uss_mib"],
        "payload_rtt_ms": main["payload_ms"],
        "confinement_layers": main["layers"],
    }
    for backend in backends[1:]:
        summary = _summary(sandbox[backend]["sandbox_rtt"])
        out["rtt_p50_us"][f"sandbox_{backend}"] = summary["p50"]
        out["rtt_p99_us"][f"sandbox_{backend}"] = summary["p99"]
        out["throughput_calls_s"][f"sandbox_{backend}"] = round(sandbox[backend]["sandbox_tput"])
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(out["machine"])
    print(f"{'call round trip':28} {'p50 µs':>10} {'p99 µs':>10} {'× raw pipe':>11}")
    for key, p50 in out["rtt_p50_us"].items():
        p99 = out["rtt_p99_us"].get(key, float("nan"))
        print(f"  {key:26} {p50:10.1f} {p99:10.1f} {p50 / raw50:10.2f}×")
    raw_tput = out["throughput_calls_s"]["raw_pipe"]
    print("pipelined, 64 in flight (calls/s)")
    for key, value in out["throughput_calls_s"].items():
        print(f"  {key:26} {value:10d} {value / raw_tput:10.2f}× raw")
    cold = out["cold_start_p50_ms"]
    print(f"cold start to first call, p50: {cold['plain']} ms plain, {cold['zygote']} ms zygote")
    print(f"idle worker USS: {out['idle_uss_mib']} MiB")
    print(
        "payload round trip (ms): "
        + ", ".join(f"{int(k) // 1024} KiB {v}" for k, v in out["payload_rtt_ms"].items())
    )
    print(f"confinement layers: {', '.join(out['confinement_layers']) or 'none'}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `plexisandbox bench`."""
    parser = subparsers.add_parser("bench", help="measure module overhead against baselines")
    parser.add_argument("--quick", action="store_true", help="fewer samples (for CI)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
