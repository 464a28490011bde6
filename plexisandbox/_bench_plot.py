"""Host side: `plexisandbox bench --plot FILE.png` — charts of a bench result (matplotlib, Agg).

matplotlib is an optional extra (`pip install 'plexisandbox[bench]'`); `require_matplotlib()`
is called before any measurement so a missing extra fails at once, not after the suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._bench_common import EXTRA_HINT

__all__ = ["PlotUnavailable", "plot_module", "plot_suite", "require_matplotlib"]


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """Import matplotlib with the non-interactive Agg backend and return `pyplot`.

    Raises:
        PlotUnavailable: matplotlib is missing; the message names the extra to install.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable(
            f"--plot needs matplotlib, which is not installed: {EXTRA_HINT} (or run without --plot)"
        ) from exc
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _bars(ax: Any, labels: list[str], series: Mapping[str, list[float]], unit: str) -> None:
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt=_number, fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)


def plot_suite(result: Mapping[str, Any], path: str) -> None:
    """Round trip, throughput, payload scaling and start-up charts of a suite result."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (rtt_ax, tput_ax), (payload_ax, start_ax) = axes

    p50, p99 = result["rtt_p50_us"], result["rtt_p99_us"]
    keys = list(p50)
    _bars(rtt_ax, keys, {"p50": [p50[k] for k in keys], "p99": [p99[k] for k in keys]}, "µs")
    rtt_ax.set_yscale("log")
    rtt_ax.set_title("small call round trip (log scale)")

    tput = result["throughput_calls_s"]
    _bars(tput_ax, list(tput), {"calls/s": [float(v) for v in tput.values()]}, "calls/s")
    tput_ax.set_title(f"pipelined throughput, {result.get('window', 64)} in flight")

    payload = result.get("payload_rtt_ms", {})
    if payload:
        sizes = [int(s) for s in payload]
        payload_ax.plot(sizes, list(payload.values()), marker="o")
        payload_ax.set_xscale("log", base=2)
        payload_ax.set_yscale("log")
        payload_ax.set_xticks(
            sizes, [f"{s // 2**20} MiB" if s >= 2**20 else f"{s // 1024} KiB" for s in sizes]
        )
        payload_ax.set_xlabel("payload")
        payload_ax.set_ylabel("ms (median round trip)")
        payload_ax.grid(alpha=0.3)
    payload_ax.set_title("payload scaling (echo of a bytes value)")

    starts: dict[str, float] = {
        f"cold {k}": float(v) for k, v in result["cold_start_p50_ms"].items()
    }
    conf = result.get("confinement_overhead", {})
    for label in ("unconfined", "confined"):
        if isinstance(conf.get(label), Mapping):
            starts[f"{label} start"] = float(conf[label]["start_p50_ms"])
    scale = result.get("many_workers", {})
    if "load_p50_ms" in scale:
        starts[f"one of {scale['workers']} (8 at a time)"] = float(scale["load_p50_ms"])
    _bars(start_ax, list(starts), {"p50": list(starts.values())}, "ms")
    start_ax.set_title("worker start to first answer (p50)")

    fig.suptitle(f"plexisandbox bench — {result.get('machine', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_module(result: Mapping[str, Any], path: str) -> None:
    """In-process vs sandbox p50/p99 of one module method."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = ["in-process (confined worker)", "through the sandbox"]
    rows = [result["in_process_us"], result["sandbox_us"]]
    _bars(ax, labels, {"p50": [r["p50"] for r in rows], "p99": [r["p99"] for r in rows]}, "µs")
    ax.set_title(
        f"{result['module']} {result['method']}(): overhead {result['overhead_us']:+.1f} µs, "
        f"{result['overhead_ratio']:.2f}×",
        fontsize=9,
    )
    fig.suptitle(result.get("machine", ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
