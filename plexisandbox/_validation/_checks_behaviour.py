"""Host side: checks on what the code does — security compliance, performance constraints.

Source-only checks (imports, calls) read the AST facts; permission-dependent ones use whatever
permissions are known (a literal in the source, or the sandboxed description). Like every
check, they read and never execute: they are a review aid on top of confinement, not a
substitute for it.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from typing import Any

from ._facts import UNKNOWN
from ._rules import finding
from ._subject import Subject

__all__ = ["BEHAVIOUR_CHECKS"]

Item = dict[str, Any]

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


BEHAVIOUR_CHECKS = (check_security, check_performance)
