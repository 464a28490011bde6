"""Host side: assemble a validation report, score it, print it, enforce it.

Score (documented in docs/validation.md, stable across releases):
    score = max(0, 100 - sum over rules of weight(rule) * min(count(rule), 3))
rounded to one decimal. Critical items weigh 20, warnings 5, documentation and annotation
warnings 2. Counting each rule at most three times keeps one repeated omission (ten
undocumented methods) from hiding every other problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from plexisandbox.errors import ContractViolation

from ._rules import CATEGORIES, CRITICAL, RULES

__all__ = ["MAX_COUNT_PER_RULE", "build_report", "enforce", "format_report", "score"]

MAX_COUNT_PER_RULE = 3


def score(items: Iterable[dict[str, Any]]) -> float:
    """The documented score of a list of report items."""
    counts = Counter(item["rule"] for item in items)
    penalty = sum(RULES[r].weight * min(n, MAX_COUNT_PER_RULE) for r, n in counts.items())
    return round(max(0.0, 100.0 - penalty), 1)


def _line(item: dict[str, Any]) -> int:
    _, _, line = str(item.get("location", "")).rpartition(":")
    return int(line) if line.isdigit() else 0


def _order(item: dict[str, Any]) -> tuple[int, int, str, str]:
    return (CATEGORIES.index(item["category"]), _line(item), item["rule"], item["message"])


def build_report(items: Iterable[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The seed's shape — is_valid, score, violations, warnings — plus `extra` fields."""
    unique: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in items:
        unique.setdefault((item["rule"], item["location"], item["message"]), item)
    ordered = sorted(unique.values(), key=_order)
    violations = [i for i in ordered if i["severity"] == CRITICAL]
    warnings = [i for i in ordered if i["severity"] != CRITICAL]
    return {
        "is_valid": not violations,
        "score": score(ordered),
        "violations": violations,
        "warnings": warnings,
        **extra,
    }


_RESET, _BOLD, _DIM = "\033[0m", "\033[1m", "\033[2m"
_RED, _YELLOW, _GREEN = "\033[31m", "\033[33m", "\033[32m"


def format_report(report: dict[str, Any], *, color: bool) -> str:
    """Human-readable report: a verdict line, then items grouped by category with file:line."""

    def paint(text: str, *codes: str) -> str:
        return "".join(codes) + text + _RESET if color and codes else text

    module = report.get("module") or report.get("file") or "<module>"
    cls = f" ({report['class']})" if report.get("class") else ""
    nv, nw = len(report["violations"]), len(report["warnings"])
    verdict = paint("VALID", _BOLD, _GREEN) if report["is_valid"] else paint("INVALID", _BOLD, _RED)
    lines = [
        f"{paint(str(module), _BOLD)}{cls}: {verdict}  score {report['score']:g}/100  "
        f"({nv} violation{'s' * (nv != 1)}, {nw} warning{'s' * (nw != 1)}; "
        f"checks: {report.get('checks', 'static')})"
    ]
    items = [*report["violations"], *report["warnings"]]
    for category in CATEGORIES:
        group = [i for i in items if i["category"] == category]
        if not group:
            continue
        lines.append(f"  {paint(category, _BOLD)}")
        for item in sorted(group, key=_order):
            critical = item["severity"] == CRITICAL
            tag = paint("error  ", _RED) if critical else paint("warning", _YELLOW)
            rule = paint(f"[{item['rule']}]", _DIM)
            lines.append(f"    {tag} {item['location']}: {item['message']}  {rule}")
            if item.get("fix"):
                lines.append(f"            {paint('fix: ' + item['fix'], _DIM)}")
    return "\n".join(lines)


def enforce(report: dict[str, Any], *, module: str) -> None:
    """Refuse a module whose report has violations (what `Supervisor.load(validate=True)` calls).

    Raises:
        ContractViolation: `report["is_valid"]` is false; `.report` carries the full report and
            the message lists the violations with their locations and the override.
    """
    if report.get("is_valid", False):
        return
    violations = report.get("violations", [])
    shown = "\n".join(f"  - {v['location']}: {v['message']} [{v['rule']}]" for v in violations[:10])
    more = f"\n  … and {len(violations) - 10} more" if len(violations) > 10 else ""
    raise ContractViolation(
        f"module {module!r} fails contract validation (score {report.get('score', 0):g}, "
        f"{len(violations)} violation{'s' * (len(violations) != 1)}):\n{shown}{more}\n"
        "Fix them (see `plexisandbox validate MODULE`), or load with validate=False to run it "
        "anyway.",
        module=module,
        report=report,
    )
