"""Host side: checks on what a module declares — configuration schema, API, documentation.

Values come from the `Subject` (source literals, or the sandboxed description). The JSON Schema
work that could hang or fetch (metaschema, defaults) runs in a child process (`_schemacheck`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

from ._facts import UNKNOWN, contains_unknown, unparse
from ._rules import finding
from ._schemacheck import check_schema_isolated
from ._subject import BASE_MEMBERS, CONTRACT_METHODS, Subject

__all__ = ["DECL_CHECKS"]

Item = dict[str, Any]

_TRIVIAL_SCHEMAS: tuple[dict[str, Any], ...] = ({}, {"type": "object"})
#: A version string: `1`, `1.2`, `1.2.3`, optionally with a pre-release/build suffix.
VERSION_RE = re.compile(r"^v?\d+(\.\d+){0,3}([.+-]?[0-9A-Za-z][0-9A-Za-z.+-]*)?$")
#: Annotations that describe msgpack-able values (outermost name, before `[`).
_WIRE_TYPES = frozenset(
    {
        "None", "bool", "int", "float", "str", "bytes", "bytearray", "list", "dict", "tuple",
        "List", "Dict", "Tuple", "Sequence", "Mapping", "Optional", "Union", "Any", "object",
        "Literal", "TypedDict", "MutableMapping", "MutableSequence", "JSON", "Json",
    }
)  # fmt: skip


# -- configuration compliance ---------------------------------------------------------------
def check_config(s: Subject) -> Iterator[Item]:
    schema = s.schema
    if schema is UNKNOWN or contains_unknown(schema):
        return
    where = s.where("get_config_schema")
    if not isinstance(schema, dict) or schema.get("type", "object") not in (
        "object",
        ["object"],
    ):
        shown = schema.get("type") if isinstance(schema, dict) else type(schema).__name__
        yield finding(
            "config.schema-not-object",
            f"get_config_schema() describes {shown!r}, but configuration is an object",
            where,
        )
        return
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    if isinstance(required, list) and isinstance(properties, dict):
        missing = [k for k in required if isinstance(k, str) and k not in properties]
        if missing:
            yield finding(
                "config.required-not-in-properties",
                f"required keys {missing} are not described under properties",
                where,
            )
    if schema in _TRIVIAL_SCHEMAS:
        return
    for problem in check_schema_isolated(schema):
        yield finding(problem["rule"], f"get_config_schema(): {problem['message']}", where)


# -- API contracts --------------------------------------------------------------------------
def _param_problems(s: Subject, name: str) -> Iterator[tuple[str, str]]:
    """(rule, message) for parameters call_method(**kwargs) cannot reach or carry."""
    sig = (s.description or {}).get("signatures", {}).get(name)
    if isinstance(sig, dict) and isinstance(sig.get("params"), list):
        for p in sig["params"]:
            kind = p.get("kind") if isinstance(p, dict) else None
            if kind in ("VAR_POSITIONAL", "POSITIONAL_ONLY"):
                yield (
                    "api.unreachable-params",
                    f"{name}() takes {'*' if kind == 'VAR_POSITIONAL' else ''}"
                    f"{p.get('name')} ({kind.lower().replace('_', '-')}), which keyword "
                    "calls cannot pass",
                )
    else:
        fn = s.facts.module_class.methods.get(name) if s.facts and s.facts.module_class else None
        if fn is not None:
            a = fn.node.args
            for p in a.posonlyargs[1:]:
                yield (
                    "api.unreachable-params",
                    f"{name}() takes {p.arg} (positional-only), which keyword calls cannot pass",
                )
            if a.vararg is not None:
                yield (
                    "api.unreachable-params",
                    f"{name}() takes *{a.vararg.arg} (var-positional), which keyword calls "
                    "cannot pass",
                )
    fn = s.facts.module_class.methods.get(name) if s.facts and s.facts.module_class else None
    if fn is None:
        return
    a = fn.node.args
    for p in [*a.posonlyargs, *a.args][1:] + a.kwonlyargs:
        if p.annotation is None:
            continue
        text = (
            p.annotation.value
            if isinstance(p.annotation, ast.Constant) and isinstance(p.annotation.value, str)
            else unparse(p.annotation)
        )
        names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
        names = {n.rsplit(".", 1)[-1] for n in names} - {"typing", "collections", "abc"}
        odd = sorted(names - _WIRE_TYPES)
        if odd:
            yield (
                "api.param-not-serializable",
                f"{name}({p.arg}: {text}) — {', '.join(odd)} cannot be sent as msgpack",
            )


def check_api(s: Subject) -> Iterator[Item]:
    methods = s.methods
    where = s.where("get_available_methods")
    if methods is not UNKNOWN:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            yield finding(
                "api.method-missing",
                "get_available_methods() must return a list of method names",
                where,
            )
            methods = []
        cls = s.facts.module_class if s.facts else None
        signatures = (s.description or {}).get("signatures", {})
        for name in methods:
            if name.startswith("_") or name in CONTRACT_METHODS:
                yield finding(
                    "api.exposes-contract-method",
                    f"get_available_methods() lists {name!r}, a contract or private method",
                    where,
                )
            if s.description is not None:
                sig = signatures.get(name, {})
                exists, is_callable = sig.get("exists", False), sig.get("callable", False)
            elif cls is not None:
                exists = name in cls.methods or name in cls.attributes
                is_callable = name not in cls.attributes
                if not exists and (name in BASE_MEMBERS or not cls.bases_known):
                    exists = is_callable = True  # inherited: BaseModule or an unread base
            else:
                continue
            if not exists:
                yield finding(
                    "api.method-missing",
                    f"get_available_methods() lists {name!r}, which the class does not define",
                    where,
                )
            elif not is_callable:
                yield finding(
                    "api.method-not-callable",
                    f"get_available_methods() lists {name!r}, which is not a method",
                    s.where(name) if cls is None or name in cls.methods else where,
                )
            else:
                for rule, message in _param_problems(s, name):
                    yield finding(rule, message, s.where(name))
    version = s.api_version
    if version is not UNKNOWN and not (
        isinstance(version, str) and len(version) <= 64 and VERSION_RE.match(version)
    ):
        yield finding(
            "api.version-format",
            f"get_api_version() returns {version!r}, not a version string like '1.0.0'",
            s.where("get_api_version"),
        )


# -- documentation --------------------------------------------------------------------------
def check_docs(s: Subject) -> Iterator[Item]:
    facts = s.facts
    if facts is not None and not facts.error:
        if facts.docstring is None:
            yield finding("docs.module-docstring", "the module has no docstring", facts.where(1))
        cls = facts.module_class
        if cls is not None:
            if cls.docstring is None:
                yield finding(
                    "docs.class-docstring",
                    f"class {cls.name} has no docstring",
                    facts.where(cls.line),
                )
            for name, fn in sorted(cls.methods.items(), key=lambda kv: kv[1].line):
                if not name.startswith("_") and fn.docstring is None:
                    yield finding(
                        "docs.method-docstring",
                        f"method {name}() lacks documentation",
                        facts.where(fn.line),
                    )
    meta = s.metadata
    if meta is UNKNOWN:
        return
    where = s.where("get_metadata")
    for key, rule in (
        ("description", "docs.metadata-description"),
        ("author", "docs.metadata-author"),
    ):
        value = meta.get(key) if isinstance(meta, dict) else None
        if value is UNKNOWN:
            continue
        if not (isinstance(value, str) and value.strip()):
            yield finding(rule, f"get_metadata() has no {key!r}", where)


DECL_CHECKS = (check_config, check_api, check_docs)
