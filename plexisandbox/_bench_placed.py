"""Host side: the call path with every process placed on chosen CPUs — the bench's answer to
a shared VM's scheduling lottery.

Under default scheduling each process keeps whatever CPU it first ran on, so one baseline's
child may share the caller's CPU (a round trip costs only the CPU work, ~8 µs for a raw
pipe) while the next one's lands on the other CPU (two cross-CPU wake-ups, ~46 µs even for C).
Placing every process makes both regimes deterministic and each ratio like for like:

* `one_cpu`: caller and callee on the same CPU — what the round trip costs in CPU work;
* `two_cpus`: caller on one CPU, callee (every thread of it) on another — CPU work plus
  the wake-ups a busy server's calls will usually pay.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import anyio

from . import _bench_baselines as base
from . import _bench_suite as suite
from ._bench_common import summary_us

__all__ = ["placed"]


def _one_regime(n: int, host_cpu: int, child_cpu: int, backend: str) -> dict[str, Any]:
    os.sched_setaffinity(0, {host_cpu})
    with base.peers(cpu=child_cpu) as (raw, mp):
        result = anyio.run(
            functools.partial(
                suite.call_path,
                n,
                payloads=False,
                peers={"raw_pipe": raw.roundtrip, "mp_pipe": mp.roundtrip},
                worker_cpu=child_cpu,
            ),
            backend=backend,
        )
        # The floor's own pipelined rate, placed the same way (sandbox and floor alike pay
        # the wake-ups of two CPUs, or alternate on one).
        raw_throughput = raw.pipelined(n * 4, 64)
    p50 = {name: summary_us(samples)["p50"] for name, samples in result["peer_rtt"].items()}
    p50["sandbox"] = summary_us(result["rtt"])["p50"]
    return {
        "cpus": [host_cpu, child_cpu],
        "rtt_p50_us": p50,
        "ratio_to_raw_pipe": round(p50["sandbox"] / p50["raw_pipe"], 2),
        "ratio_to_mp_pipe": round(p50["sandbox"] / p50["mp_pipe"], 2),
        "throughput_calls_s": round(result["throughput"]),
        "raw_pipe_throughput_calls_s": round(raw_throughput),
        "throughput_ratio_to_raw_pipe": round(result["throughput"] / raw_throughput, 2),
    }


def placed(n: int, backends: list[str]) -> dict[str, Any]:
    """Both regimes (`{"one_cpu": …, "two_cpus": …}` for the first backend, the same under
    `by_backend` for each), or {"unavailable": why} on a single-CPU machine."""
    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    if len(cpus) < 2:
        return {"unavailable": "needs two CPUs"}
    try:
        by_backend = {
            backend: {
                "one_cpu": _one_regime(n, cpus[0], cpus[0], backend),
                "two_cpus": _one_regime(n, cpus[0], cpus[1], backend),
            }
            for backend in backends
        }
        return {**by_backend[backends[0]], "by_backend": by_backend}
    except OSError as exc:
        return {"unavailable": f"cannot set CPU affinity: {exc}"}
    finally:
        os.sched_setaffinity(0, before)
