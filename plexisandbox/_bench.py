"""Host side: `plexisandbox bench` — module overhead against baselines measured in the same run.

Machines here are shared and noisy, so every figure is reported next to baselines taken in the
same process tree a moment earlier: a blocking raw pipe with msgpack (the floor for a Python
peer), `multiprocessing.Pipe` (pickle), execnet when installed, and an in-process direct call.

    plexisandbox bench [--quick] [--json] [--plot FILE.png]      the suite
    plexisandbox bench MODULE --call METHOD [--args JSON] [-n N]   one module's method

The measurements live in `_bench_baselines` (the peers), `_bench_suite` (the sandbox) and
`_bench_module` (a user's module); `_bench_plot` draws the charts.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import anyio

from ._bench_common import machine, summary_us

__all__ = ["add_parser", "run", "run_suite"]


def _progress(what: str) -> None:
    print(f"bench: {what}", file=sys.stderr, flush=True)


def run_suite(*, quick: bool, workers: int | None = None) -> dict[str, Any]:
    """Measure everything; returns the JSON object `--json` prints."""
    from . import _bench_baselines as base
    from . import _bench_placed
    from . import _bench_suite as suite

    n = 500 if quick else 3000
    backends = ["asyncio"] if quick else ["asyncio", "trio"]
    _progress(f"baselines ({n} calls each)")
    execnet = base.execnet_rtt(n)
    in_process = anyio.run(base.in_process_rtt, n)

    # The raw pipe and mp.Pipe round trips are taken interleaved with the sandbox's (see
    # call_path): each backend's ratio compares samples from the same moments.
    calls: dict[str, dict[str, Any]] = {}
    with base.peers() as (raw, mp):
        raw_tput = raw.pipelined(n * 4, 64)
        for backend in backends:
            _progress(f"sandbox call path ({backend}), interleaved with the baselines")
            calls[backend] = anyio.run(
                functools.partial(
                    suite.call_path,
                    n,
                    payloads=backend == backends[0],
                    payload_samples=3 if quick else 10,
                    peers={"raw_pipe": raw.roundtrip, "mp_pipe": mp.roundtrip},
                ),
                backend=backend,
            )
    _progress("call round trip with every process placed: one CPU, then two")
    placed = _bench_placed.placed(n // 2, backends)
    main = calls[backends[0]]
    raw_rtt, mp_rtt = main["peer_rtt"]["raw_pipe"], main["peer_rtt"]["mp_pipe"]

    _progress("cold start, plain and zygote")
    cold = anyio.run(suite.cold_start, 5 if quick else 50)  # a p50 of 20 swung ±10%
    count = workers if workers is not None else (20 if quick else 200)
    _progress(f"{count} workers at once (zygote)")
    scale = anyio.run(lambda: suite.many_workers(count, idle=0.3 if quick else 1.0))
    _progress("confinement overhead")
    try:
        confinement = anyio.run(
            lambda: suite.confinement_overhead(
                4 if quick else 20, 300 if quick else 2000, syscalls=20_000 if quick else 200_000
            )
        )
    except RuntimeError as exc:  # no way to start an unconfined worker any more
        confinement = {"unavailable": str(exc)}
    _progress("events")
    events = anyio.run(
        lambda: suite.events_rate(1000 if quick else 5000, [1, 4] if quick else [1, 4, 8])
    )

    rtt = {
        "raw_pipe": summary_us(raw_rtt),
        "mp_pipe": summary_us(mp_rtt),
        "in_process": summary_us(in_process),
        "sandbox": summary_us(main["rtt"]),
    }
    unavailable: dict[str, str] = {}
    if isinstance(execnet, str):
        unavailable["execnet"] = execnet
    else:
        rtt["execnet"] = summary_us(execnet)
    throughput = {"raw_pipe": round(raw_tput), "sandbox": round(main["throughput"])}
    ratios = {}
    for backend in backends:
        own = calls[backend]
        sandbox50 = summary_us(own["rtt"])["p50"]
        ratios[backend] = {
            peer: round(sandbox50 / summary_us(samples)["p50"], 2)
            for peer, samples in own["peer_rtt"].items()
        }
        if backend != backends[0]:
            rtt[f"sandbox_{backend}"] = summary_us(own["rtt"])
            throughput[f"sandbox_{backend}"] = round(own["throughput"])
    ms = {kind: [s * 1e3 for s in cold[kind]] for kind in ("plain", "zygote")}
    return {
        "machine": machine(),
        "quick": quick,
        "backends": backends,
        "calls": n,
        "window": 64,
        "rtt_p50_us": {k: v["p50"] for k, v in rtt.items()},
        "rtt_p99_us": {k: v["p99"] for k, v in rtt.items()},
        "baselines_unavailable": unavailable,
        # Sandbox p50 over each baseline's p50, per backend, from the interleaved samples.
        "rtt_ratio": ratios,
        # Every process placed (see _bench_placed): one_cpu is the CPU cost alone, two_cpus
        # adds a cross-CPU wake-up each way. Default scheduling picks one of them per process.
        "placed": placed,
        "throughput_calls_s": throughput,
        "cold_start_p50_ms": {k: round(statistics.median(v), 2) for k, v in ms.items()},
        "cold_start_p99_ms": {k: round(max(v), 2) for k, v in ms.items()},
        # Zygote samples whose worker was launched after all (no zygote could be started).
        "cold_start_zygote_fallbacks": cold["zygote_fallbacks"],
        # One idle zygote child that has answered a call: the figure the budget is for.
        "idle_uss_mib": cold["uss_mib"]["zygote"],
        "idle_uss_mib_by_start": cold["uss_mib"],
        "payload_rtt_ms": main["payload_ms"],
        "many_workers": scale,
        "confinement_overhead": confinement,
        "events": events,
        "confinement_layers": main["layers"],
    }


def format_suite(out: dict[str, Any]) -> str:
    """The human-readable table of a `run_suite()` result."""
    raw50 = out["rtt_p50_us"]["raw_pipe"]
    mp50 = out["rtt_p50_us"]["mp_pipe"]
    lines = [out["machine"]]
    lines.append(
        f"{'call round trip':28} {'p50 µs':>10} {'p99 µs':>10} {'× raw pipe':>11} {'× mp pipe':>10}"
    )
    for key, p50 in out["rtt_p50_us"].items():
        p99 = out["rtt_p99_us"][key]
        lines.append(f"  {key:26} {p50:10.1f} {p99:10.1f} {p50 / raw50:10.2f}× {p50 / mp50:9.2f}×")
    for key, why in out["baselines_unavailable"].items():
        lines.append(f"  {key:26} {why}")
    lines.append(
        "  same-moment ratios (interleaved samples): "
        + "; ".join(
            f"{backend} " + ", ".join(f"{r:.2f}× {peer}" for peer, r in ratios.items())
            for backend, ratios in out["rtt_ratio"].items()
        )
    )
    placed = out["placed"]
    if "unavailable" in placed:
        lines.append(f"  placed on CPUs: {placed['unavailable']}")
    else:
        for (backend, regime), row in (
            ((b, r), regimes[r])
            for b, regimes in placed["by_backend"].items()
            for r in ("one_cpu", "two_cpus")
        ):
            label = f"{backend}, {'one CPU' if regime == 'one_cpu' else 'two CPUs'}"
            p50 = row["rtt_p50_us"]
            lines.append(
                f"  placed, {label:17}: raw pipe {p50['raw_pipe']:.1f} µs, mp.Pipe "
                f"{p50['mp_pipe']:.1f} µs, sandbox {p50['sandbox']:.1f} µs = "
                f"{row['ratio_to_raw_pipe']:.2f}× raw, {row['ratio_to_mp_pipe']:.2f}× mp; "
                f"{row['throughput_calls_s']} calls/s pipelined = "
                f"{row['throughput_ratio_to_raw_pipe']:.2f}× raw's "
                f"{row['raw_pipe_throughput_calls_s']}"
            )
    raw_tput = out["throughput_calls_s"]["raw_pipe"]
    lines.append(f"pipelined, {out['window']} in flight (calls/s)")
    for key, value in out["throughput_calls_s"].items():
        lines.append(f"  {key:26} {value:10d} {value / raw_tput:10.2f}× raw")
    cold, cold99 = out["cold_start_p50_ms"], out["cold_start_p99_ms"]
    lines.append(
        f"cold start to first call, p50 (max): {cold['plain']} ms ({cold99['plain']}) plain, "
        f"{cold['zygote']} ms ({cold99['zygote']}) zygote"
    )
    if out["cold_start_zygote_fallbacks"]:
        lines.append(
            f"  WARNING: {out['cold_start_zygote_fallbacks']} zygote samples were launched "
            "instead (no zygote could be started; see the log above)"
        )
    uss = out["idle_uss_mib_by_start"]
    lines.append(f"idle worker USS: {uss['zygote']} MiB zygote child, {uss['plain']} MiB launched")
    lines.append(
        "payload round trip (ms): "
        + ", ".join(f"{int(k) // 1024} KiB {v}" for k, v in out["payload_rtt_ms"].items())
    )
    scale = out["many_workers"]
    mem = scale["memory"]
    lines.append(
        f"{scale['workers']} confined workers at once (zygote): loaded in {scale['load_all_s']} s "
        f"(p50 {scale['load_p50_ms']} ms each), {scale['answered']}/{scale['workers']} answered "
        f"a concurrent call wave in {scale['call_wave_ms']} ms; USS median "
        f"{mem['uss_mib_median']} MiB, MemAvailable drop "
        f"{scale['mem_available_drop_mib_per_worker']} MiB per worker"
    )
    if scale.get("zygote_fallbacks"):
        lines.append(f"  WARNING: {scale['zygote_fallbacks']} of them were launched, not forked")
    conf = out["confinement_overhead"]
    if "unavailable" in conf:
        lines.append(f"confinement overhead: unavailable ({conf['unavailable']})")
    else:
        c, u, cost = conf["confined"], conf["unconfined"], conf["cost"]
        mode = "zygote" if conf["zygote"] else "launched"
        lines.append(
            f"confinement overhead ({mode}): start {u['start_p50_ms']} → {c['start_p50_ms']} ms "
            f"({cost['start_ms']:+} ms), round trip {u['rtt_p50_us']} → {c['rtt_p50_us']} µs "
            f"({cost['rtt_us']:+} µs), getppid() {cost['getppid_ns']:+} ns, "
            f"stat() {cost['stat_ns']:+} ns"
        )
        if conf.get("zygote_fallbacks"):
            lines.append(f"  WARNING: {conf['zygote_fallbacks']} starts were launched, not forked")
    events = out["events"]
    lines.append(
        f"events ({events['events']} per burst; baseline {events['baseline_calls_s']} "
        "sequential calls/s):"
    )
    for subs, row in events["by_subscribers"].items():
        lines.append(
            f"  {subs:>2} subscribers: {row['events_s']:10d} events/s, "
            f"{row['deliveries_s']:10d} deliveries/s, dropped {row['dropped']}"
        )
    lines.append(f"confinement layers: {', '.join(out['confinement_layers']) or 'none'}")
    return "\n".join(lines)


def _fail(message: str, code: int) -> int:
    print(f"plexisandbox: error: {message}", file=sys.stderr)
    return code


def _run_module(args: argparse.Namespace) -> int:
    from ._bench_module import BenchUsageError, bench_module, format_module_result, parse_call_args
    from .interfaces import ModulePermissions

    if not args.call:
        return _fail(
            f"bench {args.module} needs --call METHOD (and --args JSON for its keyword "
            "arguments); without MODULE, bench runs the suite",
            2,
        )
    try:
        call_args = parse_call_args(args.args, module=args.module)
        config: dict[str, Any] | None = None
        if args.config:
            try:
                config = json.loads(Path(args.config).read_text())
            except (OSError, ValueError) as exc:
                raise BenchUsageError(f"cannot read --config {args.config}: {exc}", code=2) from exc
        try:
            grant = ModulePermissions.from_names(args.grant or [])
        except ValueError as exc:
            raise BenchUsageError(f"--grant: {exc}", code=2) from exc
        explicit = args.n is not None
        n = args.n if explicit else (200 if args.quick else 1000)
        if n < 1:
            raise BenchUsageError("-n must be at least 1", code=2)
        budget = 60.0 if explicit else (3.0 if args.quick else 10.0)
        result = anyio.run(
            lambda: bench_module(
                args.module,
                args.call,
                call_args,
                n=n,
                budget=budget,
                grant=grant,
                grant_requested=args.grant_requested,
                name=args.name,
                config=config,
                strict=not args.best_effort,
            )
        )
    except BenchUsageError as exc:
        return _fail(str(exc), exc.code)
    if args.plot:
        from ._bench_plot import plot_module

        plot_module(result, args.plot)
    print(json.dumps(result, indent=2) if args.json else format_module_result(result))
    return 0


def run(args: argparse.Namespace) -> int:
    """`plexisandbox bench`: the suite, or one module's method with MODULE; returns the exit
    status (2: usage, 1: the module could not be measured)."""
    if args.plot:
        from ._bench_plot import PlotUnavailable, require_matplotlib

        try:  # before any measurement, so a missing extra fails at once
            require_matplotlib()
        except PlotUnavailable as exc:
            return _fail(str(exc), 2)
    if args.module:
        return _run_module(args)
    if args.call or args.args:
        return _fail(
            "--call and --args need a MODULE: plexisandbox bench path/to/module.py "
            """--call METHOD --args '{"value": 1}'""",
            2,
        )
    out = run_suite(quick=args.quick, workers=args.workers)
    if args.plot:
        from ._bench_plot import plot_suite

        plot_suite(out, args.plot)
        _progress(f"charts written to {args.plot}")
    print(json.dumps(out, indent=2) if args.json else format_suite(out))
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `plexisandbox bench`."""
    parser = subparsers.add_parser(
        "bench",
        help="measure module overhead against baselines",
        description="Without MODULE: the suite (round trip, throughput, payloads, start-up, "
        "memory, N workers, confinement overhead, events) against baselines measured in the "
        "same run. With MODULE --call METHOD: that method in-process (inside a throwaway "
        "confined worker, never in the host) versus through the sandbox.",
    )
    parser.add_argument(
        "module",
        nargs="?",
        help="a .py file, path.py:Class, package.module:Class or an entry point name",
    )
    parser.add_argument("--call", metavar="METHOD", help="the module's API method to time")
    parser.add_argument("--args", metavar="JSON", help="keyword arguments for --call, as JSON")
    parser.add_argument(
        "-n",
        type=int,
        metavar="N",
        help="measured calls each way (default 1000, --quick 200; stops after 10 s / 3 s "
        "unless -n is given)",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON file with the module's config")
    parser.add_argument(
        "--grant",
        action="append",
        metavar="PERM",
        help="grant a permission flag or capability to MODULE; repeatable",
    )
    parser.add_argument(
        "--grant-requested", action="store_true", help="grant MODULE exactly what it declares"
    )
    parser.add_argument("--name", help="module name (default: derived from MODULE)")
    parser.add_argument(
        "--best-effort",
        action="store_true",
        help="run even where a confinement layer is unavailable (degraded)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (for CI)")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="workers alive at once in the scale test (default 200, --quick 20)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw latency/throughput charts (needs the bench extra: matplotlib)",
    )
