"""Host side: the validation entry points — static, with a description, and end to end.

`validate_static` parses the file; `apply_description` redoes every check with what a
sandboxed worker reported (`Supervisor.describe()`); `validate_module` does both, importing the
module only inside a confined worker with a deadline. Module code never runs in this process.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from plexisandbox._limits import Limits

from ._checks_behaviour import BEHAVIOUR_CHECKS
from ._checks_contract import CONTRACT_CHECKS
from ._checks_decl import DECL_CHECKS
from ._facts import UNKNOWN, ModuleFacts, read_facts
from ._report import build_report
from ._rules import finding
from ._subject import Subject, build_subject

__all__ = ["apply_description", "report_for", "validate_static"]

_CHECKS: tuple[Callable[[Subject], Iterator[dict[str, Any]]], ...] = (
    *CONTRACT_CHECKS,
    *BEHAVIOUR_CHECKS,
    *DECL_CHECKS,
)


#: Items kept per rule (the rest are counted in the report's "omitted"). The score counts a
#: rule at most MAX_COUNT_PER_RULE times, and what a worker describes is module output: a
#: READY frame listing 1.5 million method names made 3 million items — 1.9 GB and 8 s in the
#: host, and a report of 1.2 GB kept in the report cache.
MAX_ITEMS_PER_RULE = 50


def _split(path: str) -> tuple[str, str | None]:
    """`file.py:Class` → (`file.py`, `Class`)."""
    head, sep, tail = path.rpartition(":")
    if sep and head.endswith(".py") and tail.isidentifier():
        return head, tail
    return path, None


def report_for(
    facts: ModuleFacts | None,
    description: dict[str, Any] | None,
    *,
    label: str,
    max_limits: Limits | None = None,
    base_limits: Limits | None = None,
    extra_items: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Run every check over the combined view and build the report."""
    subject = build_subject(
        facts, description, max_limits=max_limits, base_limits=base_limits, label=label
    )
    if description is not None and facts is not None and facts.module_class is not None:
        # describe() passes the API version through str(); a non-string literal in the source
        # (`return 1.0`) is still a contract violation.
        static = facts.module_class.methods.get("get_api_version")
        literal = static.literal_return() if static else UNKNOWN
        if literal is not UNKNOWN and not isinstance(literal, str):
            subject.api_version = literal
    items: list[dict[str, Any]] = []
    found: Counter[str] = Counter()
    for check in _CHECKS:
        for item in check(subject):
            found[item["rule"]] += 1
            if found[item["rule"]] <= MAX_ITEMS_PER_RULE:
                items.append(item)
    items.extend(extra_items)
    cls = facts.module_class.name if facts and facts.module_class else None
    if description is not None and isinstance(description.get("class"), str):
        cls = description["class"].rsplit(".", 1)[-1]
    omitted = {rule: n - MAX_ITEMS_PER_RULE for rule, n in found.items() if n > MAX_ITEMS_PER_RULE}
    return build_report(
        items,
        module=label,
        file=facts.path if facts else None,
        **{"class": cls},
        checks="static+sandboxed" if description is not None else "static",
        **({"description": description} if description is not None else {}),
        **({"omitted": omitted} if omitted else {}),
    )


def validate_static(path: str, *, max_limits: Limits | None = None) -> dict[str, Any]:
    """Validate a module file by parsing it (never importing it).

    `path` may name a class as `file.py:Class`. Checks that need values the source computes at
    run time are skipped until `apply_description()` supplies them.

    Raises:
        FileNotFoundError: `path` does not exist.
    """
    file, cls = _split(os.fspath(path))
    if not os.path.isfile(file):
        raise FileNotFoundError(f"module file {file!r} does not exist")
    facts = read_facts(os.path.realpath(file), cls, display=file)
    return report_for(facts, None, label=file, max_limits=max_limits)


def apply_description(
    report: dict[str, Any],
    description: dict[str, Any],
    *,
    max_limits: Limits | None = None,
    base_limits: Limits | None = None,
) -> dict[str, Any]:
    """Redo `report`'s checks with `describe()` output (from a sandboxed worker); new report.

    The static report names the file; its source is parsed again for locations, and every
    declared value (permissions, metadata, schema, methods, API version, signatures) is taken
    from `description`.
    """
    label = str(report.get("module") or report.get("file") or "<module>")
    file = report.get("file")
    facts = None
    if isinstance(file, str) and os.path.isfile(file):
        cls = description.get("class")
        cls_name = cls.rsplit(".", 1)[-1] if isinstance(cls, str) else None
        facts = read_facts(file, cls_name, display=label)
    return report_for(
        facts, description, label=label, max_limits=max_limits, base_limits=base_limits
    )


def failure_report(
    facts: ModuleFacts | None,
    *,
    label: str,
    rule: str,
    message: str,
    max_limits: Limits | None = None,
) -> dict[str, Any]:
    """The static report plus one item saying why the sandboxed part could not describe it."""
    where = facts.where(facts.module_class.line if facts.module_class else 1) if facts else label
    report = report_for(
        facts,
        None,
        label=label,
        max_limits=max_limits,
        extra_items=[finding(rule, message, where)],
    )
    report["checks"] = "static (sandboxed describe failed)"
    return report
