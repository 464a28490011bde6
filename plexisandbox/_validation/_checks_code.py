"""Host side: checks on the code itself — interface, signatures, security, performance.

Each check is a generator of report items over a `Subject`; none of them executes module code.
Source-only checks (imports, calls, annotations) need the AST facts; permission-dependent ones
use whatever permissions are known (a literal in the source, or the sandboxed description).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from typing import Any

from ._facts import UNKNOWN, FuncFacts
from ._rules import finding
from ._subject import Subject

__all__ = ["CODE_CHECKS"]

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

NETWORK_MODULES = (
    "socket", "ssl", "requests", "urllib.request", "urllib3", "http.client", "httpx",
    "aiohttp", "websockets", "websocket", "ftplib", "smtplib", "poplib", "imaplib",
    "telnetlib", "xmlrpc.client", "asyncio.open_connection", "asyncio.start_server",
)  # fmt: skip
PROCESS_MODULES = (
    "subprocess", "multiprocessing", "pty", "os.system", "os.popen", "os.fork", "os.forkpty",
    "os.execv", "os.execve", "os.execvp", "os.execvpe", "os.execl", "os.execle", "os.execlp",
    "os.execlpe", "os.spawnv", "os.spawnve", "os.spawnl", "os.spawnle", "os.posix_spawn",
    "os.posix_spawnp", "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
    "concurrent.futures.ProcessPoolExecutor",
)  # fmt: skip
NATIVE_MODULES = ("ctypes", "_ctypes", "cffi")
_FS_CALLS = {
    "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.mkdir", "os.makedirs",
    "os.rename", "os.renames", "os.replace", "os.chmod", "os.chown", "os.symlink", "os.link",
    "os.truncate", "os.mkfifo", "shutil.copy", "shutil.copy2", "shutil.copyfile",
    "shutil.copytree", "shutil.move", "shutil.rmtree",
}  # fmt: skip
_FS_METHODS = {"write_text", "write_bytes", "touch", "mkdir", "unlink", "rmdir", "symlink_to"}
_DYNAMIC_CODE = {"eval", "exec", "compile", "__import__", "importlib.import_module"}
_BLOCKING = {
    "time.sleep", "os.system", "subprocess.run", "subprocess.call", "subprocess.check_call",
    "subprocess.check_output", "urllib.request.urlopen", "socket.create_connection",
    "socket.getaddrinfo", "socket.gethostbyname", "input", "select.select",
}  # fmt: skip
_BLOCKING_HTTP = ("requests.", "httpx.")
_HTTP_VERBS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "stream"}
_SOCKET_METHODS = {"recv", "recvfrom", "recv_into", "sendall", "accept"}


def _matches(name: str, prefixes: tuple[str, ...]) -> str | None:
    for p in prefixes:
        if name == p or name.startswith(p + "."):
            return p
    return None


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
    return ast.unparse(node)


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
        return None if ok else f"`return {ast.unparse(value)}`"
    if isinstance(value, ast.List | ast.Tuple | ast.Set | ast.JoinedStr):
        return f"`return {ast.unparse(value)[:40]}`"
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
            got = ast.unparse(fn.node.args)
            yield finding(
                "signature.config-method",
                f"{name}({got}) does not match the contract's {want}",
                s.facts.where(fn.line),
            )


# -- security compliance --------------------------------------------------------------------
def _declares(perms: dict[str, Any], *names: str) -> bool:
    caps = set(perms.get("capabilities") or ())
    return any(bool(perms.get(n)) or n in caps for n in names)


def _used(
    s: Subject, prefixes: tuple[str, ...], *, calls: bool = True
) -> Iterator[tuple[str, int, str]]:
    """(name, line, "imports"/"calls") of imports (and calls) matching `prefixes`, one per line."""
    assert s.facts is not None
    seen: set[int] = set()
    found = [(n, ln, "imports") for n, ln in s.facts.imports]
    if calls:
        found += [(n, ln, "calls") for n, ln, _, _ in s.facts.calls]
    for name, line, how in sorted(found, key=lambda x: x[1]):
        if _matches(name, prefixes) and line not in seen:
            seen.add(line)
            yield name, line, how


def _writes_files(call: ast.Call, name: str) -> bool:
    if name in ("open", "io.open", "builtins.open"):
        mode: ast.expr | None = call.args[1] if len(call.args) > 1 else None
        for kw in call.keywords:
            if kw.arg == "mode":
                mode = kw.value
        if mode is None:
            return False
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
            return any(c in mode.value for c in "wax+")
        return True  # a computed mode: assume it may write
    if name in _FS_CALLS:
        return True
    last = name.rsplit(".", 1)[-1]
    return "." in name and not name.startswith("os.") and last in _FS_METHODS


def check_security(s: Subject) -> Iterator[Item]:
    facts = s.facts
    perms = s.permissions
    usable = facts is not None and not facts.error
    where_perms = s.where("get_required_permissions")
    if perms is not None:
        if _declares(perms, "external_api_access", "external_api") and not perms.get(
            "network_access"
        ):
            yield finding(
                "security.external-api-without-network",
                "EXTERNAL_API / external_api_access is declared without network_access=True",
                where_perms,
            )
    if not usable or facts is None:
        return
    network = perms is not None and _declares(
        perms, "network_access", "external_api_access", "external_api"
    )
    if perms is not None and not network:
        for name, line, how in _used(s, NETWORK_MODULES):
            yield finding(
                "security.undeclared-network",
                f"{how} {name} but get_required_permissions() does not declare network_access",
                facts.where(line),
            )
    for name, line, how in _used(s, PROCESS_MODULES):
        yield finding(
            "security.process-spawn",
            f"{how} {name}: modules may not start processes",
            facts.where(line),
        )
    for name, line, _how in _used(s, NATIVE_MODULES, calls=False):
        yield finding(
            "security.native-code", f"imports {name} (raw native calls)", facts.where(line)
        )
    files = perms is not None and _declares(
        perms, "file_system_access", "file_handling", "backup_storage"
    )
    if perms is not None and not files:
        seen: set[int] = set()
        for name, line, call, _fn in facts.calls:
            if line not in seen and _writes_files(call, name):
                seen.add(line)
                yield finding(
                    "security.undeclared-filesystem",
                    f"writes files ({name.removeprefix('?.')}) without file_system_access",
                    facts.where(line),
                )
    if perms is not None and perms.get("admin_access"):
        meta = s.metadata
        if isinstance(meta, dict):
            why = meta.get("admin_justification", meta.get("justification"))
            if why is not UNKNOWN and not (isinstance(why, str) and why.strip()):
                yield finding(
                    "security.admin-without-justification",
                    "admin_access is requested but get_metadata() gives no admin_justification",
                    s.where("get_metadata"),
                )
    for name, line, call, _fn in facts.calls:
        if name in _DYNAMIC_CODE and not (call.args and isinstance(call.args[0], ast.Constant)):
            yield finding(
                "security.dynamic-code",
                f"{name}() on a computed value",
                facts.where(line),
            )


# -- performance constraints ----------------------------------------------------------------
def _is_blocking(name: str, call: ast.Call, socket_used: bool) -> bool:
    if name in _BLOCKING:
        return True
    if name.startswith(_BLOCKING_HTTP) and name.rsplit(".", 1)[-1] in _HTTP_VERBS:
        return True
    return socket_used and "." in name and name.rsplit(".", 1)[-1] in _SOCKET_METHODS


def check_performance(s: Subject) -> Iterator[Item]:
    facts = s.facts
    if facts is not None and not facts.error:
        socket_used = any(_matches(n, ("socket",)) for n, _ in facts.imports)
        for name, line, call, fn in facts.calls:
            if fn is None or not fn.is_async or id(call) in facts.awaited:
                continue
            if _is_blocking(name, call, socket_used):
                yield finding(
                    "performance.blocking-call",
                    f"{name.removeprefix('?.')}() blocks the event loop inside async {fn.name}()",
                    facts.where(line),
                )
    yield from _check_limits(s)


def _check_limits(s: Subject) -> Iterator[Item]:
    meta = s.metadata
    if not isinstance(meta, dict):
        return
    declared = meta.get("limits", {})
    where = s.where("get_metadata")
    if declared is UNKNOWN:
        return
    fields = {f.name for f in dataclasses.fields(s.base_limits)}
    valid: dict[str, Any] = {}
    if not isinstance(declared, dict):
        yield finding(
            "performance.invalid-limits", "get_metadata()['limits'] must be a dict", where
        )
        declared = {}
    for key, value in declared.items():
        if key not in fields:
            yield finding(
                "performance.invalid-limits",
                f"unknown limit {key!r}; known: {', '.join(sorted(fields))}",
                where,
            )
        elif value is UNKNOWN:
            continue
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            yield finding(
                "performance.invalid-limits",
                f"limit {key}={value!r} must be a positive number",
                where,
            )
        else:
            valid[key] = value
    if s.max_limits is None:
        return
    effective = dataclasses.replace(s.base_limits, **valid)
    for f in dataclasses.fields(effective):
        value, allowed = getattr(effective, f.name), getattr(s.max_limits, f.name)
        if value > allowed:
            origin = "requests" if f.name in valid else "gets the default"
            yield finding(
                "performance.limits-exceed-operator",
                f"the module {origin} {f.name}={value}, above the operator's maximum {allowed}",
                where,
            )


CODE_CHECKS = (check_interface, check_signatures, check_security, check_performance)
