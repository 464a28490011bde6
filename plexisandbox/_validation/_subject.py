"""Host side: the module as the checks see it — AST facts, overlaid with `describe()` output.

Static values are literals read from the source (or BaseModule's documented defaults when a
method is not overridden); once a sandboxed worker has described the module, its answers
replace them. `UNKNOWN` means "computed at run time and not described yet": checks skip it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from plexisandbox._limits import Limits
from plexisandbox.interfaces import BaseModule, ModulePermissions

from ._facts import UNKNOWN, ModuleFacts, dotted, literal

__all__ = ["BASE_MEMBERS", "CONTRACT_METHODS", "Subject", "build_subject"]

#: Every attribute BaseModule itself defines (the host imports only the trusted contract).
BASE_MEMBERS: frozenset[str] = frozenset(n for n in dir(BaseModule) if not n.startswith("__"))
CONTRACT_METHODS: frozenset[str] = frozenset(
    n for n in BASE_MEMBERS if not n.startswith("_") and callable(getattr(BaseModule, n))
)


@dataclass
class Subject:
    """What the checks read. Every declared value may be `UNKNOWN`."""

    facts: ModuleFacts | None
    description: dict[str, Any] | None
    permissions: dict[str, Any] | None
    metadata: Any
    schema: Any
    methods: Any
    api_version: Any
    max_limits: Limits | None
    base_limits: Limits
    label: str

    def where(self, method: str | None = None) -> str:
        """`file:line` of a method of the module class, else of the class, else the label."""
        facts = self.facts
        if facts is None or facts.error:
            return facts.where(facts.error_line) if facts else self.label
        cls = facts.module_class
        if cls is None:
            return facts.where(1)
        if method and method in cls.methods:
            return facts.where(cls.methods[method].line)
        return facts.where(cls.line)


def _static_permissions(facts: ModuleFacts) -> dict[str, Any] | None:
    cls = facts.module_class
    method = cls.methods.get("get_required_permissions") if cls else None
    if method is None or len(method.returns) != 1:
        return None
    value = method.returns[0].value
    if not (isinstance(value, ast.Call) and dotted(value.func).endswith("ModulePermissions")):
        return None
    if value.args:
        return None
    names: list[str] = []
    for kw in value.keywords:
        if kw.arg is None:
            return None  # **kwargs: not knowable statically
        v = literal(kw.value)
        if kw.arg == "capabilities":
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
                return None
            names.extend(v)
        elif v is True:
            names.append(kw.arg)
        elif v is not False:
            return None
    try:
        return ModulePermissions.from_names(names).to_dict()
    except (ValueError, AttributeError):
        return None


def _static_value(facts: ModuleFacts, method: str, default: Any) -> Any:
    cls = facts.module_class
    if cls is None:
        return UNKNOWN
    if method in cls.methods:
        return cls.methods[method].literal_return()
    if method in cls.attributes or not cls.bases_known:
        return UNKNOWN
    return default


def _default_methods(facts: ModuleFacts) -> Any:
    cls = facts.module_class
    if cls is None or not cls.bases_known:
        return UNKNOWN
    return sorted(n for n in cls.methods if not n.startswith("_") and n not in CONTRACT_METHODS)


def build_subject(
    facts: ModuleFacts | None,
    description: dict[str, Any] | None,
    *,
    max_limits: Limits | None = None,
    base_limits: Limits | None = None,
    label: str = "<module>",
) -> Subject:
    """Combine static facts and (when given) the sandboxed description into one view."""
    if description is not None:
        d = description
        return Subject(
            facts,
            d,
            d.get("permissions") if isinstance(d.get("permissions"), dict) else None,
            d.get("metadata", UNKNOWN),
            d.get("schema", UNKNOWN),
            d.get("methods", UNKNOWN),
            d.get("api_version", UNKNOWN),
            max_limits,
            base_limits or Limits(),
            label,
        )
    if facts is None or facts.error or facts.module_class is None:
        return Subject(
            facts,
            None,
            None,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            max_limits,
            base_limits or Limits(),
            label,
        )
    methods = (
        _static_value(facts, "get_available_methods", UNKNOWN)
        if "get_available_methods" in facts.module_class.methods
        else _default_methods(facts)
    )
    return Subject(
        facts,
        None,
        _static_permissions(facts),
        _static_value(facts, "get_metadata", UNKNOWN),
        _static_value(facts, "get_config_schema", {"type": "object"}),
        methods,
        _static_value(facts, "get_api_version", "1.0.0"),
        max_limits,
        base_limits or Limits(),
        label,
    )
