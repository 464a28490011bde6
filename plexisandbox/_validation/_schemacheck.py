"""Runs in a throwaway child process: check a module's config schema with jsonschema.

The schema is data a module wrote, so checking it is not safe in the host: a `pattern` can be a
catastrophic regex (ReDoS) and a remote `$ref` would make jsonschema fetch a URL. The host
therefore pipes the schema (JSON) into a fresh `python -I` running `main()`, under a CPU
rlimit and a wall-clock deadline, and reads back a list of problems. No remote reference is
ever retrieved: validation uses an empty `referencing.Registry`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["SCHEMA_CHECK_TIMEOUT", "check_schema_isolated", "schema_problems"]

#: Wall-clock seconds the child may spend; past it the schema is reported as uncheckable.
SCHEMA_CHECK_TIMEOUT = 10.0
_MAX_DEPTH = 64
_DATA_KEYS = frozenset({"default", "examples", "const", "enum"})

Problem = dict[str, str]


def _pointer(parts: list[str | int]) -> str:
    return "#" + "".join(f"/{p}" for p in parts)


def _subschemas(
    node: Any, parts: list[str | int], depth: int = 0
) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, dict):
        yield parts, node
        for key, value in node.items():
            if key not in _DATA_KEYS:
                yield from _subschemas(value, [*parts, key], depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _subschemas(value, [*parts, i], depth + 1)


def schema_problems(schema: Any) -> list[Problem]:
    """Metaschema conformance and self-consistent defaults. Call only in a child process."""
    import jsonschema
    from referencing import Registry

    if not isinstance(schema, dict):
        return []
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _pointer(list(exc.path))
        return [{"rule": "config.schema-invalid", "message": f"{exc.message} (at {where})"}]
    root = cls(schema, registry=Registry(), format_checker=cls.FORMAT_CHECKER)
    problems: list[Problem] = []
    for parts, sub in _subschemas(schema, []):
        if "default" not in sub:
            continue
        try:
            error = jsonschema.exceptions.best_match(
                root.evolve(schema=sub).iter_errors(sub["default"])
            )
        except Exception as exc:  # Unresolvable $ref and friends: report, never fetch
            problems.append(
                {
                    "rule": "config.schema-invalid",
                    "message": f"cannot check the default at {_pointer(parts)}: "
                    f"{type(exc).__name__}: {exc}",
                }
            )
            continue
        if error is not None:
            problems.append(
                {
                    "rule": "config.default-invalid",
                    "message": f"default {sub['default']!r} at {_pointer(parts)} fails its own "
                    f"schema: {error.message}",
                }
            )
    return problems


def main() -> None:
    """Child entry point: JSON schema on stdin, JSON list of problems on stdout."""
    cpu = int(os.environ.get("PLEXISANDBOX_SCHEMA_CPU", "10"))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    schema = json.loads(sys.stdin.read())
    json.dump(schema_problems(schema), sys.stdout)


def check_schema_isolated(schema: Any, *, timeout: float | None = None) -> list[Problem]:
    """Run `schema_problems` in a fresh interpreter with a deadline; never in this process.

    A timeout, a crash or unreadable output becomes one `config.schema-check-failed` problem.
    """
    deadline = SCHEMA_CHECK_TIMEOUT if timeout is None else timeout
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from plexisandbox._validation._schemacheck import main; main()"
    )
    env = {"PLEXISANDBOX_SCHEMA_CPU": str(max(1, int(deadline) + 1)), "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", code, root],
            input=json.dumps(schema),
            capture_output=True,
            text=True,
            timeout=deadline,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [
            {
                "rule": "config.schema-check-failed",
                "message": f"checking the schema took longer than {deadline:g}s",
            }
        ]
    except (TypeError, ValueError) as exc:  # not JSON-encodable
        return [{"rule": "config.schema-invalid", "message": f"schema is not JSON: {exc}"}]
    try:
        result = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        result = None
    if not isinstance(result, list):
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return [
            {
                "rule": "config.schema-check-failed",
                "message": f"the schema checker failed: {tail[0][:200]}",
            }
        ]
    return [p for p in result if isinstance(p, dict)]
