"""Host side: `plexisandbox validate MODULE… [--json] [--min-score N]` — contract validation.

For people: a report per module, grouped by category, with file:line locations, coloured on a
terminal. For CI: `--json` prints one JSON document; the exit status is 1 when any module has
violations or scores below `--min-score`, 2 when a module cannot be found or the sandbox
cannot be built (strict mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

import anyio

from ._limits import Limits
from .errors import ConfinementUnavailable, SandboxError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `validate` sub-command to an argparse `add_subparsers()` object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check modules against the seed's contracts (score 0-100)",
        description="Validate modules against the contracts of module-interfaces-guide.md. "
        "Static checks parse the source; the module is imported only in a sandboxed worker.",
    )
    p.add_argument(
        "modules",
        nargs="+",
        metavar="MODULE",
        help="a .py file, path.py:Class, package.module:Class, or an entry point name",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document (for CI)")
    p.add_argument(
        "--min-score",
        type=float,
        default=None,
        metavar="N",
        help="exit 1 when a module scores below N (violations always exit 1)",
    )
    p.add_argument(
        "--static",
        action="store_true",
        help="parse only; skip the sandboxed import (fewer checks, no worker)",
    )
    p.add_argument(
        "--max-limit",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="operator maximum for a Limits field (e.g. memory_mb=128); repeatable",
    )
    p.add_argument(
        "--timeout", type=float, default=20.0, help="deadline of the sandboxed import, seconds"
    )
    p.add_argument(
        "--best-effort",
        action="store_true",
        help="describe modules even where a confinement layer is unavailable (degraded)",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the human output (auto: when stdout is a terminal and NO_COLOR is unset)",
    )
    p.set_defaults(func=run)
    return p


def _max_limits(pairs: list[str]) -> Limits | None:
    if not pairs:
        return None
    fields = {f.name: f for f in dataclasses.fields(Limits)}
    values: dict[str, float] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(
                f"--max-limit {pair!r}: use FIELD=VALUE with FIELD one of {', '.join(fields)}"
            )
        number = float(raw)
        values[key] = int(number) if number.is_integer() and fields[key].type == "int" else number
    return Limits(**values)  # type: ignore[arg-type]


async def _validate_all(args: argparse.Namespace, max_limits: Limits | None) -> list[Any]:
    from ._supervisor import Supervisor
    from ._validation import validate_module, validate_static

    results: list[Any] = []
    if args.static:
        for module in args.modules:
            try:
                results.append(validate_static(module, max_limits=max_limits))
            except (OSError, ValueError) as exc:
                results.append(exc)
        return results
    async with Supervisor(strict=not args.best_effort) as sup:
        for module in args.modules:
            try:
                results.append(
                    await validate_module(
                        module, supervisor=sup, max_limits=max_limits, timeout=args.timeout
                    )
                )
            except (OSError, ImportError, LookupError, TypeError, ValueError, SandboxError) as exc:
                results.append(exc)
    return results


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def run(args: argparse.Namespace) -> int:
    """Validate `args.modules`; print the reports; 0 all valid, 1 invalid/low score, 2 error."""
    from ._validation import format_report

    try:
        max_limits = _max_limits(args.max_limit)
    except (TypeError, ValueError) as exc:
        print(f"plexisandbox: error: {exc}", file=sys.stderr)
        return 2
    results = anyio.run(_validate_all, args, max_limits)
    status = 0
    reports: list[dict[str, Any]] = []
    for module, result in zip(args.modules, results, strict=True):
        if isinstance(result, BaseException):
            status = 2
            first = (str(result).strip().splitlines() or [""])[0]
            if isinstance(result, ConfinementUnavailable):
                first += " (--best-effort describes it in a degraded sandbox; --static only parses)"
            print(
                f"plexisandbox: error: {module}: {type(result).__name__}: {first}", file=sys.stderr
            )
            continue
        reports.append(result)
        low = args.min_score is not None and result["score"] < args.min_score
        if (not result["is_valid"] or low) and status == 0:
            status = 1
    if args.json:
        document = {
            "ok": status == 0,
            "min_score": args.min_score,
            "reports": reports,
        }
        print(json.dumps(document, indent=2, default=repr))
    else:
        color = _use_color(args.color)
        for report in reports:
            print(format_report(report, color=color))
            if args.min_score is not None and report["score"] < args.min_score:
                print(f"  score {report['score']:g} is below --min-score {args.min_score:g}")
    return status
