"""Host side: checks on the module's shape — interface compliance and method signatures.

Each check is a generator of report items over a `Subject`, reading the AST facts only; none
of them executes module code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from ._facts import FuncFacts, unparse
from ._rules import finding
from ._subject import Subject

__all__ = ["CONTRACT_CHECKS", "LIFECYCLE", "REQUIRED", "SYNC_CONTRACT"]

Item = dict[str, Any]

REQUIRED = ("initialize", "get_metadata", "get_required_permissions")
#: Lifecycle methods and the return type the contract gives them.
LIFECYCLE = {
    "initialize": "bool",
    "start": "bool",
    "stop": "bool",
    "pause": "bool",
    "resume": "bool",
    "shutdown": "bool",
    "health_check": "dict",
}
#: Contract methods called synchronously, and their return types.
SYNC_CONTRACT = {
    "get_metadata": "dict",
    "get_required_permissions": "ModulePermissions",
    "get_config_schema": "dict",
    "validate_config": "bool",
    "apply_config": "bool",
    "get_current_config": "dict",
    "get_api_version": "str",
    "get_available_methods": "list",
    "register_event_handler": "bool",
    "emit_event": "bool",
}
_ANNOTATION_OK = {
    "bool": {"bool"},
    "dict": {"dict", "Dict", "Mapping", "MutableMapping"},
    "str": {"str"},
    "list": {"list", "List", "Sequence", "tuple", "Tuple"},
    "ModulePermissions": {"ModulePermissions"},
}


# -- interface compliance -------------------------------------------------------------------
def check_interface(s: Subject) -> Iterator[Item]:
    facts = s.facts
    if facts is None:
        return
    if facts.error:
        yield finding(
            "interface.syntax-error", f"the source cannot be parsed: {facts.error}", s.where()
        )
        return
    if not facts.candidates and s.description is None:
        yield finding(
            "interface.no-module-class",
            "no class in this file subclasses BaseModule",
            facts.where(1),
        )
        return
    if facts.class_name and facts.module_class is None and s.description is None:
        yield finding(
            "interface.no-module-class",
            f"no BaseModule subclass named {facts.class_name!r} in this file",
            facts.where(1),
        )
        return
    concrete = [c for c in facts.candidates if c.concrete]
    if facts.class_name is None and len(concrete) > 1:
        names = ", ".join(c.name for c in concrete)
        yield finding(
            "interface.several-module-classes",
            f"several module classes ({names}); the loader cannot tell which one to run",
            facts.where(concrete[1].line),
        )
    cls = facts.module_class
    if cls is None or not cls.bases_known:
        return
    for name in REQUIRED:
        if name not in cls.methods:
            yield finding(
                "interface.missing-required-method",
                f"{cls.name} does not implement the REQUIRED method {name}()",
                facts.where(cls.line),
            )


# -- method signatures ----------------------------------------------------------------------
def _ann_text(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return unparse(node)


def _ann_ok(text: str, expected: str) -> bool:
    head = text.split("[", 1)[0].strip().rsplit(".", 1)[-1]
    return head in _ANNOTATION_OK[expected] or head == "Any"


def _required_extra(fn: FuncFacts) -> list[str]:
    """Parameters after `self` that a caller must supply."""
    a = fn.node.args
    positional = [*a.posonlyargs, *a.args][1:]
    required = positional[: len(positional) - len(a.defaults)] if a.defaults else positional
    required_kw = [k for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    return [p.arg for p in (*required, *required_kw)]


def _bad_return(node: ast.Return, expected: str) -> str | None:
    value = node.value
    if value is None:
        return "a bare `return` gives None"
    if isinstance(value, ast.Constant):
        ok = isinstance(value.value, bool) if expected == "bool" else False
        return None if ok else f"`return {unparse(value)}`"
    if isinstance(value, ast.List | ast.Tuple | ast.Set | ast.JoinedStr):
        return f"`return {unparse(value)[:40]}`"
    if isinstance(value, ast.Dict) and expected == "bool":
        return "`return {...}`"
    return None


def _falls_off_end(fn: FuncFacts) -> bool:
    body = fn.node.body
    if fn.returns or not body:
        return False
    last = body[-1]
    only_doc = all(
        isinstance(st, ast.Pass)
        or (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant))
        for st in body
    )
    return not only_doc and not isinstance(last, ast.Raise)


def check_signatures(s: Subject) -> Iterator[Item]:
    facts = s.facts
    cls = facts.module_class if facts and not facts.error else None
    if facts is None or cls is None:
        return
    for name, fn in cls.methods.items():
        where = facts.where(fn.line)
        expected = LIFECYCLE.get(name) or SYNC_CONTRACT.get(name)
        if name in LIFECYCLE:
            if not fn.is_async:
                yield finding(
                    "signature.lifecycle-not-async",
                    f"{name}() must be `async def`; the supervisor awaits it",
                    where,
                )
            extra = _required_extra(fn)
            if extra:
                yield finding(
                    "signature.lifecycle-params",
                    f"{name}() requires {', '.join(extra)}, but it is called with no arguments",
                    where,
                )
            for ret in fn.returns:
                bad = _bad_return(ret, LIFECYCLE[name])
                if bad:
                    yield finding(
                        "signature.return-value",
                        f"{name}() must return {LIFECYCLE[name]}; {bad}",
                        facts.where(ret.lineno),
                    )
            if _falls_off_end(fn):
                yield finding(
                    "signature.return-value",
                    f"{name}() ends without `return`, so it returns None instead of "
                    f"{LIFECYCLE[name]}",
                    where,
                )
        elif name in SYNC_CONTRACT and fn.is_async:
            yield finding(
                "signature.sync-method-is-async",
                f"{name}() is called synchronously; `async def` makes it return a coroutine",
                where,
            )
        if expected is not None:
            text = _ann_text(fn.node.returns)
            if text is None:
                yield finding(
                    "signature.missing-annotation",
                    f"{name}() has no return annotation (the contract says {expected})",
                    where,
                )
            elif not _ann_ok(text, expected):
                yield finding(
                    "signature.return-annotation",
                    f"{name}() is annotated `-> {text}`; the contract says {expected}",
                    where,
                )
    yield from _check_call_method(s, cls.methods.get("call_method"))
    yield from _check_config_methods(s, cls.methods)


def _check_call_method(s: Subject, fn: FuncFacts | None) -> Iterator[Item]:
    if fn is None or s.facts is None:
        return
    a = fn.node.args
    positional = [*a.posonlyargs, *a.args]
    problems = []
    if not fn.is_async:
        problems.append("it is not `async def`")
    if len(positional) < 2 and a.vararg is None:
        problems.append("it takes no `method` parameter")
    if a.kwarg is None:
        problems.append("it takes no **kwargs")
    extra = [
        p for p in _required_extra(fn) if p != (positional[1].arg if len(positional) > 1 else "")
    ]
    if extra:
        problems.append(f"it requires {', '.join(extra)}")
    if problems:
        yield finding(
            "signature.call-method",
            "call_method() does not match `async def call_method(self, method, **kwargs)`: "
            + "; ".join(problems),
            s.facts.where(fn.line),
        )


def _check_config_methods(s: Subject, methods: dict[str, FuncFacts]) -> Iterator[Item]:
    assert s.facts is not None
    for name, wants_config in (
        ("validate_config", True),
        ("apply_config", True),
        ("get_config_schema", False),
        ("get_current_config", False),
    ):
        fn = methods.get(name)
        if fn is None:
            continue
        a = fn.node.args
        positional = [*a.posonlyargs, *a.args][1:]
        extra = _required_extra(fn)
        if wants_config:
            ok = (len(positional) >= 1 or a.vararg is not None) and len(extra) <= 1
            if ok and extra and extra[0] != (positional[0].arg if positional else None):
                ok = False
            want = f"{name}(self, config)"
        else:
            ok = not extra
            want = f"{name}(self)"
        if not ok:
            got = unparse(fn.node.args)
            yield finding(
                "signature.config-method",
                f"{name}({got}) does not match the contract's {want}",
                s.facts.where(fn.line),
            )


CONTRACT_CHECKS = (check_interface, check_signatures)
