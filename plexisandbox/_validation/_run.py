"""Host side: `validate_module()` — static checks plus `describe()` in a confined worker."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import anyio
import anyio.to_thread
import msgpack

from plexisandbox._compiled import FileIdentity, file_identity
from plexisandbox._limits import Limits
from plexisandbox._sources import resolve_source
from plexisandbox.errors import ConfinementUnavailable, ModuleError, SandboxError

from ._api import failure_report, report_for
from ._facts import ModuleFacts, read_facts

__all__ = ["validate_description", "validate_module"]


def _label(source: Any, file: str | None, default: str) -> str:
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        head, sep, _tail = text.rpartition(":")
        return head if sep and head.endswith(".py") else text
    if file:
        rel = os.path.relpath(file)
        return rel if not rel.startswith("..") else file
    return default


async def validate_module(
    source: Any,
    *,
    supervisor: Any = None,
    max_limits: Limits | None = None,
    timeout: float = 20,
) -> dict[str, Any]:
    """Validate a module: parse its source, then import it only in a confined worker.

    `source` is anything `Supervisor.load()` accepts. The worker (from `supervisor`, or a
    temporary Supervisor) runs `describe()` under `timeout` seconds; a module whose import
    raises, crashes its worker or overruns the deadline gets a violation, not an exception.
    Cancellation propagates untouched (the worker is discarded by the supervisor).

    Raises:
        FileNotFoundError, ModuleNotFoundError, LookupError, TypeError: no such module.
        ConfinementUnavailable: strict mode and the sandbox cannot be built here; the module
            is never imported outside it.
    """
    resolved = resolve_source(source)
    label = _label(source, resolved.file, resolved.label)
    facts: ModuleFacts | None = None
    if resolved.file is not None:
        file = resolved.file
        facts = await anyio.to_thread.run_sync(
            lambda: read_facts(file, resolved.spec.get("class"), display=label)
        )
    if facts is not None and facts.error:
        return await anyio.to_thread.run_sync(
            lambda: report_for(facts, None, label=label, max_limits=max_limits)
        )

    async def describe(sup: Any) -> dict[str, Any]:
        result: dict[str, Any] = await sup.describe(source, timeout=timeout)
        return result

    base_limits = getattr(supervisor, "default_limits", None)
    rule = message = ""
    try:
        if supervisor is not None:
            description = await describe(supervisor)
        else:
            from plexisandbox._supervisor import Supervisor

            async with Supervisor() as sup:
                base_limits = sup.default_limits
                description = await describe(sup)
    except ConfinementUnavailable:
        raise
    except TimeoutError:
        rule = "performance.import-timeout"
        message = f"importing and describing the module took longer than {timeout:g}s"
    except ModuleError as exc:
        rule = "interface.import-failed"
        message = f"the module raised {exc.remote_type} on import: {exc.remote_message}"
    except SandboxError as exc:
        rule = "interface.import-failed"
        message = f"the sandboxed import failed: {exc}".splitlines()[0]
    if rule:
        return await anyio.to_thread.run_sync(
            lambda: failure_report(
                facts, label=label, rule=rule, message=message, max_limits=max_limits
            )
        )
    return await anyio.to_thread.run_sync(
        lambda: report_for(
            facts, description, label=label, max_limits=max_limits, base_limits=base_limits
        )
    )


#: Reports of the last modules loaded, keyed by everything a report depends on (see
#: `_report_key`): loading an unchanged module again gives the same report without redoing
#: the checks (or the schema checker's child process).
_REPORT_CACHE_SIZE = 64
_reports: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_reports_lock = threading.Lock()
#: A report with these items depends on more than its inputs (a child process that timed out
#: under load): never reused.
_TRANSIENT_RULES = frozenset({"config.schema-check-failed"})


#: Descriptions larger than this (packed) are validated each time, not cached.
_MAX_CACHED_DESCRIPTION = 1 << 20


def _report_key(
    description: dict[str, Any],
    file: str | None,
    identity: FileIdentity | None,
    label: str,
    max_limits: Limits | None,
    base_limits: Limits | None,
) -> tuple[Any, ...] | None:
    if file is not None and identity is None:
        return None  # a file that cannot be stat'ed now: check it the long way
    try:
        # The description as the worker sent it (msgpack in, so msgpack out); it holds every
        # declared value the checks read.
        described = msgpack.packb(description)
    except (TypeError, ValueError):
        return None
    if len(described) > _MAX_CACHED_DESCRIPTION:
        return None  # module output of that size is not kept (64 of them: up to 1 GiB)
    return (file, identity, label, described, max_limits, base_limits)


def _fresh_copy(report: dict[str, Any], description: dict[str, Any]) -> dict[str, Any]:
    """A report of its own for each caller (items are flat dicts of plain values)."""
    copy = dict(report)
    for key in ("violations", "warnings"):
        copy[key] = [dict(item) for item in report[key]]
    copy["description"] = description
    return copy


async def validate_description(
    description: dict[str, Any],
    *,
    file: str | None,
    label: str,
    max_limits: Limits | None = None,
    base_limits: Limits | None = None,
) -> dict[str, Any]:
    """Report for a module a worker has already described (what `Supervisor.load` holds).

    `file` is `ResolvedSource.file` (parsed for the static checks; None for a class shipped
    by value). The checks run in a thread, in one hop: the schema check may wait for its
    child. A module loaded again unchanged (the same file version, description and limits)
    gets the report computed the first time, without a thread.
    """
    cls = description.get("class")
    cls_name = cls.rsplit(".", 1)[-1] if isinstance(cls, str) else None
    identity = file_identity(file) if file is not None else None
    key = _report_key(description, file, identity, label, max_limits, base_limits)
    if key is not None:
        with _reports_lock:
            cached = _reports.get(key)
            if cached is not None:
                _reports.move_to_end(key)
                return _fresh_copy(cached, description)

    def check() -> dict[str, Any]:
        facts = read_facts(file, cls_name, display=label) if file is not None else None
        return report_for(
            facts, description, label=label, max_limits=max_limits, base_limits=base_limits
        )

    report = await anyio.to_thread.run_sync(check)
    items = (*report["violations"], *report["warnings"])
    transient = any(item.get("rule") in _TRANSIENT_RULES for item in items)
    # Kept only if the file did not change while it was checked (else the report may
    # describe the newer version, under the older one's key).
    if key is not None and not transient and (file is None or file_identity(file) == identity):
        with _reports_lock:
            stored = _fresh_copy(report, description)
            del stored["description"]  # each caller's own goes back in (`_fresh_copy`)
            _reports[key] = stored
            while len(_reports) > _REPORT_CACHE_SIZE:
                _reports.popitem(last=False)
    return report
