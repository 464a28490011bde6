"""Pure core (both sides): validate a config against a module's JSON Schema, apply defaults.

The schema comes from module code, so on the host it is untrusted (a `pattern` can be a ReDoS);
the supervisor therefore runs this inside the module's own confined worker, where a hostile
schema can only hurt the module itself. jsonschema is imported lazily: the worker pays for it
only when a module has a real schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

__all__ = ["ConfigProblem", "check_config", "json_path"]

ConfigProblem = dict[str, str]  # {"path": "$.a[0]", "rule": "minimum", "message": "..."}

_TRIVIAL: tuple[dict[str, Any], ...] = ({}, {"type": "object"})


def json_path(parts: Any) -> str:
    """`deque(['a', 0, 'b'])` → `$.a[0].b`; a key that is not a plain name is bracketed,
    `['a.b']`, so that the path stays unambiguous."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).isidentifier():
            out += f".{part}"
        else:
            out += "['" + str(part).replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def _apply_defaults(schema: Any, value: Any) -> None:
    # Fill `default`s of object properties, recursively, before validation (so defaults are
    # validated too and the module sees them).
    if not isinstance(schema, dict) or not isinstance(value, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _apply_defaults(sub, value[key])


def check_config(schema: Any, config: Any) -> tuple[dict[str, Any], ConfigProblem | None]:
    """Return (config with defaults, None) or (config, the first problem found).

    A schema that is not itself valid JSON Schema is reported with rule `schema`.
    """
    if not isinstance(config, dict):
        return {}, {"path": "$", "rule": "type", "message": "config must be an object"}
    config = copy.deepcopy(config)
    if schema in _TRIVIAL:
        return config, None
    if not isinstance(schema, dict):
        return config, {"path": "$", "rule": "schema", "message": "schema must be an object"}
    import jsonschema
    from jsonschema.exceptions import best_match

    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return config, {
            "path": json_path(exc.path),
            "rule": "schema",
            "message": f"get_config_schema() is not a valid JSON Schema: {exc.message}",
        }
    _apply_defaults(schema, config)
    errors: Iterator[Any] = validator_cls(schema).iter_errors(config)
    error = best_match(errors)
    if error is None:
        return config, None
    return config, {
        "path": json_path(error.absolute_path),
        "rule": str(error.validator),
        "message": error.message,
    }
