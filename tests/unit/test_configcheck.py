"""Config validation and defaults, without processes (the worker runs the same function)."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from plexisandbox._configcheck import check_config, json_path

GUIDE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "minLength": 1},
        "timeout": {"type": "integer", "minimum": 1, "default": 30},
    },
    "required": ["api_key"],
}


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        ([], "$"),
        (["a"], "$.a"),
        (["a", 0, "b"], "$.a[0].b"),
        (deque([3, 1]), "$[3][1]"),
        (["with space"], "$['with space']"),
        (["a.b", "c"], "$['a.b'].c"),
        (["it's"], "$['it\\'s']"),
        (["back\\slash"], "$['back\\\\slash']"),
        (["ünïcode_ok"], "$.ünïcode_ok"),
    ],
)
def test_json_path(parts: Any, path: str) -> None:
    assert json_path(parts) == path


def test_guide_schema_applies_the_default() -> None:
    config, problem = check_config(GUIDE_SCHEMA, {"api_key": "k"})
    assert problem is None
    assert config == {"api_key": "k", "timeout": 30}


def test_given_value_wins_over_the_default() -> None:
    config, problem = check_config(GUIDE_SCHEMA, {"api_key": "k", "timeout": 5})
    assert problem is None
    assert config["timeout"] == 5


def test_the_callers_config_is_not_modified() -> None:
    given = {"api_key": "k", "nested": {"x": 1}}
    config, _ = check_config(GUIDE_SCHEMA, given)
    config["nested"]["x"] = 2
    assert given == {"api_key": "k", "nested": {"x": 1}}


def test_mutable_defaults_are_copied_not_shared() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "default": []}}}
    first, _ = check_config(schema, {})
    first["tags"].append("x")
    second, _ = check_config(schema, {})
    assert second["tags"] == []
    assert schema["properties"]["tags"]["default"] == []


def test_nested_defaults_are_applied_inside_a_defaulted_object() -> None:
    schema = {
        "type": "object",
        "properties": {
            "retry": {
                "type": "object",
                "default": {},
                "properties": {"attempts": {"type": "integer", "default": 3}},
            }
        },
    }
    config, problem = check_config(schema, {})
    assert problem is None
    assert config == {"retry": {"attempts": 3}}
    config, _ = check_config(schema, {"retry": {"attempts": 9}})
    assert config == {"retry": {"attempts": 9}}


@pytest.mark.parametrize(
    ("config", "path", "rule"),
    [
        ({}, "$", "required"),
        ({"api_key": ""}, "$.api_key", "minLength"),
        ({"api_key": None}, "$.api_key", "type"),
        ({"api_key": "k", "timeout": 0}, "$.timeout", "minimum"),
        ({"api_key": "k", "timeout": 1.5}, "$.timeout", "type"),
    ],
)
def test_problem_names_path_rule_and_message(config: dict[str, Any], path: str, rule: str) -> None:
    _, problem = check_config(GUIDE_SCHEMA, config)
    assert problem is not None
    assert problem["path"] == path
    assert problem["rule"] == rule
    assert problem["message"]


def test_deep_path_in_arrays_of_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "rooms": {
                "type": "array",
                "items": {"type": "object", "properties": {"size": {"type": "integer"}}},
            }
        },
    }
    _, problem = check_config(schema, {"rooms": [{"size": 1}, {"size": "big"}]})
    assert problem is not None
    assert problem["path"] == "$.rooms[1].size"
    assert problem["rule"] == "type"


def test_a_default_that_breaks_the_schema_is_reported() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "default": "ten"}}}
    _, problem = check_config(schema, {})
    assert problem is not None
    assert problem["path"] == "$.n"


@pytest.mark.parametrize("config", [None, [], "x", 3])
def test_config_must_be_an_object(config: Any) -> None:
    _, problem = check_config(GUIDE_SCHEMA, config)
    assert problem == {"path": "$", "rule": "type", "message": "config must be an object"}


@pytest.mark.parametrize("schema", [{}, {"type": "object"}])
def test_trivial_schemas_accept_any_object(schema: dict[str, Any]) -> None:
    assert check_config(schema, {"anything": [1, 2]}) == ({"anything": [1, 2]}, None)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": "ten"}}},
        {"type": "nonsense"},
        {"required": "api_key"},
    ],
)
def test_invalid_schema_is_reported_as_rule_schema(schema: dict[str, Any]) -> None:
    _, problem = check_config(schema, {"n": 1})
    assert problem is not None
    assert problem["rule"] == "schema"
    assert "not a valid JSON Schema" in problem["message"]


@pytest.mark.parametrize("schema", [None, [], "object", 1])
def test_schema_that_is_not_an_object(schema: Any) -> None:
    _, problem = check_config(schema, {})
    assert problem == {"path": "$", "rule": "schema", "message": "schema must be an object"}


def test_schema_draft_is_honoured() -> None:
    # Draft 4's exclusiveMaximum is a boolean; a 2020-12 validator would reject the schema.
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 5, "exclusiveMaximum": True}},
    }
    assert check_config(schema, {"n": 4})[1] is None
    _, problem = check_config(schema, {"n": 5})
    assert problem is not None
    assert problem["path"] == "$.n"
