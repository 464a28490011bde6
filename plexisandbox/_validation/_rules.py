"""Host side (pure data): every contract rule — stable id, category, severity, weight, fix.

A rule id never changes meaning once published; a report's `rule` field is what CI and
`# noqa`-style tooling key on. Adding a rule is fine; renaming one is a breaking change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CATEGORIES", "RULES", "Rule", "clean", "finding"]

#: The seed's seven validation categories, in the order reports print them.
CATEGORIES: tuple[str, ...] = (
    "interface_compliance",
    "method_signatures",
    "security_compliance",
    "configuration_compliance",
    "performance_constraints",
    "api_contracts",
    "documentation",
)

CRITICAL = "critical"
WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    """One check: `severity` critical makes the module invalid; `weight` feeds the score."""

    id: str
    category: str
    severity: str
    weight: float
    fix: str


def _r(id: str, category: str, severity: str, fix: str, weight: float | None = None) -> Rule:
    if weight is None:
        weight = 20.0 if severity == CRITICAL else 5.0
    return Rule(id, category, severity, weight, fix)


_IC, _MS, _SC = "interface_compliance", "method_signatures", "security_compliance"
_CC, _PC, _AC, _DOC = (
    "configuration_compliance",
    "performance_constraints",
    "api_contracts",
    "documentation",
)
_C, _W = CRITICAL, WARNING

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        # -- interface compliance ---------------------------------------------------------------
        _r("interface.syntax-error", _IC, _C, "fix the syntax error; the module cannot load"),
        _r(
            "interface.no-module-class",
            _IC,
            _C,
            "define `class MyModule(BaseModule):` (from plexisandbox.interfaces or the seed's "
            "plexichat.infrastructure.modules.interfaces)",
        ),
        _r(
            "interface.several-module-classes",
            _IC,
            _C,
            "keep one concrete module class per file, or load it as 'file.py:ClassName'",
        ),
        _r(
            "interface.missing-required-method",
            _IC,
            _C,
            "implement the REQUIRED methods: async initialize() -> bool, "
            "get_metadata() -> dict, get_required_permissions() -> ModulePermissions",
        ),
        _r(
            "interface.import-failed",
            _IC,
            _C,
            "importing or instantiating the module in a sandboxed worker failed; run it with "
            "`plexisandbox run MODULE` to see the traceback",
        ),
        # -- method signatures ------------------------------------------------------------------
        _r(
            "signature.lifecycle-not-async",
            _MS,
            _C,
            "declare lifecycle methods with `async def` (initialize, start, stop, pause, resume, "
            "shutdown, health_check)",
        ),
        _r(
            "signature.lifecycle-params",
            _MS,
            _C,
            "lifecycle methods are called without arguments: take only `self`",
        ),
        _r(
            "signature.sync-method-is-async",
            _MS,
            _C,
            "this contract method is called synchronously: declare it with plain `def`",
        ),
        _r(
            "signature.return-annotation",
            _MS,
            _C,
            "annotate the return type the contract specifies (e.g. `-> bool` for lifecycle "
            "methods, `-> Dict[str, Any]` for health_check and get_metadata)",
        ),
        _r(
            "signature.return-value",
            _MS,
            _C,
            "return what the contract specifies: True/False from lifecycle methods, a dict from "
            "health_check",
        ),
        _r(
            "signature.call-method",
            _MS,
            _C,
            "override as `async def call_method(self, method: str, **kwargs: Any) -> Any`",
        ),
        _r(
            "signature.config-method",
            _MS,
            _C,
            "use the contract's parameters: validate_config(self, config), apply_config(self, "
            "config), get_config_schema(self), get_current_config(self)",
        ),
        _r(
            "signature.missing-annotation",
            _MS,
            _W,
            "add the contract's return annotation so type checkers catch mistakes",
            weight=2.0,
        ),
        # -- security compliance ----------------------------------------------------------------
        _r(
            "security.external-api-without-network",
            _SC,
            _C,
            "declare network_access=True alongside ModuleCapability.EXTERNAL_API / "
            "external_api_access=True",
        ),
        _r(
            "security.undeclared-network",
            _SC,
            _C,
            "declare network_access=True (or external_api_access with EXTERNAL_API) in "
            "get_required_permissions(), or remove the network code",
        ),
        _r(
            "security.process-spawn",
            _SC,
            _C,
            "modules may not start processes (exec is denied in the sandbox); use a host "
            "service instead",
        ),
        _r(
            "security.native-code",
            _SC,
            _C,
            "no permission covers raw native calls; use a pure-Python library or a host service",
        ),
        _r(
            "security.undeclared-filesystem",
            _SC,
            _C,
            "declare file_system_access=True (the module gets a private data folder), or "
            "remove the file writes",
        ),
        _r(
            "security.admin-without-justification",
            _SC,
            _C,
            "add a non-empty 'admin_justification' to get_metadata() explaining why admin "
            "access is needed, or drop admin_access",
        ),
        _r(
            "security.dynamic-code",
            _SC,
            _W,
            "avoid eval/exec/compile/__import__ on computed strings; reviewers cannot audit "
            "code they cannot read",
        ),
        # -- configuration compliance -----------------------------------------------------------
        _r(
            "config.schema-not-object",
            _CC,
            _C,
            'configuration is a JSON object: use {"type": "object", "properties": {...}}',
        ),
        _r(
            "config.schema-invalid",
            _CC,
            _C,
            "make get_config_schema() valid JSON Schema (check it against the metaschema)",
        ),
        _r(
            "config.required-not-in-properties",
            _CC,
            _C,
            "every key in `required` must be described under `properties`",
        ),
        _r(
            "config.default-invalid",
            _CC,
            _C,
            "make each `default` satisfy the schema it sits in",
        ),
        _r(
            "config.schema-check-failed",
            _CC,
            _C,
            "the schema could not be checked in time (a catastrophic regex `pattern`?): "
            "simplify it",
        ),
        # -- performance constraints ------------------------------------------------------------
        _r(
            "performance.blocking-call",
            _PC,
            _W,
            "do not block the event loop in an async method: use `await asyncio.sleep()`, an "
            "async client, or move the work to a sync API method (it runs in a thread)",
        ),
        _r(
            "performance.limits-exceed-operator",
            _PC,
            _C,
            "request at most what the operator allows in get_metadata()['limits'], or ask the "
            "operator to raise the maximum",
        ),
        _r(
            "performance.invalid-limits",
            _PC,
            _W,
            "get_metadata()['limits'] takes Limits field names with positive numbers "
            "(memory_mb, cpu_seconds, threads, open_files, call_timeout, …)",
        ),
        _r(
            "performance.import-timeout",
            _PC,
            _C,
            "importing and instantiating the module must be quick: move slow work into "
            "initialize()",
        ),
        # -- API contracts ----------------------------------------------------------------------
        _r(
            "api.method-missing",
            _AC,
            _C,
            "list only methods the class defines in get_available_methods()",
        ),
        _r(
            "api.method-not-callable",
            _AC,
            _C,
            "list only methods (callables) in get_available_methods()",
        ),
        _r(
            "api.unreachable-params",
            _AC,
            _C,
            "call_method() passes keyword arguments only: drop *args and positional-only "
            "parameters from API methods",
        ),
        _r(
            "api.param-not-serializable",
            _AC,
            _W,
            "API arguments cross a process boundary as msgpack: use None, bool, int, float, "
            "str, bytes, list and dict (of those)",
        ),
        _r(
            "api.version-format",
            _AC,
            _C,
            "return a version string such as '1.0.0' from get_api_version()",
        ),
        _r(
            "api.exposes-contract-method",
            _AC,
            _W,
            "do not list lifecycle, contract or private (_name) methods in "
            "get_available_methods(); callers would bypass the supervisor's state machine",
        ),
        # -- documentation ----------------------------------------------------------------------
        _r("docs.module-docstring", _DOC, _W, "add a module docstring saying what it does", 2.0),
        _r("docs.class-docstring", _DOC, _W, "add a docstring to the module class", 2.0),
        _r(
            "docs.method-docstring",
            _DOC,
            _W,
            "add a one-line docstring to each public method",
            2.0,
        ),
        _r(
            "docs.metadata-description",
            _DOC,
            _W,
            "add a non-empty 'description' to get_metadata()",
            2.0,
        ),
        _r("docs.metadata-author", _DOC, _W, "add a non-empty 'author' to get_metadata()", 2.0),
    )
}


#: Longest message kept in a report item; module-supplied text is cut to fit.
MAX_MESSAGE = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Module-supplied text made safe for a terminal: control characters (an ANSI escape from
    a hostile exception message) shown as `\\xNN`, length capped."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def finding(rule_id: str, message: str, location: str) -> dict[str, Any]:
    """One report item in the seed's shape plus `rule`, `location` and `fix`."""
    rule = RULES[rule_id]
    return {
        "severity": rule.severity,
        "category": rule.category,
        "message": clean(message),
        "rule": rule.id,
        "location": location,
        "fix": rule.fix,
    }
