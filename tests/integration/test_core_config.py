"""`config=` is validated against the module's schema, inside its worker (asyncio and trio).

Invalid config raises `ConfigInvalid` naming the JSON path and the rule, the module is not
loaded and its worker is gone; valid config arrives with the schema's defaults applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest

from plexisandbox import Supervisor
from plexisandbox.errors import ConfigInvalid, SandboxError
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.anyio
CONFIGURED = f"{TEST_MODULES / 'configured.py'}:Configured"
BAD_SCHEMA = f"{TEST_MODULES / 'configured.py'}:BadSchema"


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor() as supervisor:
        yield supervisor


SPARE = "plexisbx-spare"  # the zygote's pre-forked child (plexisandbox_worker.zygote)


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}


async def test_defaults_are_applied_recursively(sup: Supervisor) -> None:
    handle = await sup.load(CONFIGURED, config={"api_key": "k", "retry": {"attempts": 5}})
    expected = {
        "api_key": "k",
        "timeout": 30,
        "retry": {"attempts": 5, "backoff": 0.5},
        "mode": "safe",
    }
    assert handle.applied_config == expected
    await handle.start()
    current = await handle.call("current")
    assert current["custom"] == expected
    assert current["applied"] == [expected]  # apply_config() ran once, with the defaults


async def test_object_default_is_filled_in_and_completed(sup: Supervisor) -> None:
    handle = await sup.load(CONFIGURED, config={"api_key": "k"})
    assert handle.applied_config["retry"] == {"attempts": 3, "backoff": 0.5}


async def test_given_values_win_over_defaults(sup: Supervisor) -> None:
    config = {"api_key": "k", "timeout": 300, "mode": "fast", "channels": ["#general"]}
    handle = await sup.load(CONFIGURED, config=config)
    assert handle.applied_config["timeout"] == 300
    assert handle.applied_config["mode"] == "fast"
    assert handle.applied_config["channels"] == ["#general"]


@pytest.mark.parametrize(
    ("config", "path", "rule", "mentions"),
    [
        ({}, "$", "required", "api_key"),
        ({"api_key": ""}, "$.api_key", "minLength", ""),
        ({"api_key": 7}, "$.api_key", "type", "string"),
        ({"api_key": "k", "timeout": 0}, "$.timeout", "minimum", "1"),
        ({"api_key": "k", "timeout": 301}, "$.timeout", "maximum", "300"),
        ({"api_key": "k", "timeout": "30"}, "$.timeout", "type", "integer"),
        ({"api_key": "k", "retry": {"attempts": 0}}, "$.retry.attempts", "minimum", ""),
        ({"api_key": "k", "channels": ["#ok", 5]}, "$.channels[1]", "type", "string"),
        ({"api_key": "k", "channels": ["#ok", "No"]}, "$.channels[1]", "pattern", "#[a-z]"),
        ({"api_key": "k", "mode": "reckless"}, "$.mode", "enum", "reckless"),
        ({"api_key": "k", "colour": "red"}, "$", "additionalProperties", "colour"),
    ],
)
async def test_invalid_config_names_the_json_path_and_rule(
    sup: Supervisor, config: dict[str, Any], path: str, rule: str, mentions: str
) -> None:
    before = _children()
    with pytest.raises(ConfigInvalid) as info:
        await sup.load(CONFIGURED, config=config)
    err = info.value
    assert err.path == path
    assert err.rule == rule
    assert err.module == "Configured"
    assert f"at {path}:" in str(err)
    assert f"(rule {rule})" in str(err)
    assert mentions in str(err)
    assert "get_config_schema()" in str(err)  # says what to fix
    # The module was not loaded and its worker is gone.
    assert sup.modules == {}
    zygote = {sup.zygote.pid} if sup.zygote and sup.zygote.pid else set()
    zygote |= {p.pid for p in psutil.Process().children(recursive=True) if p.name() == SPARE}
    assert _children() - zygote <= before  # the zygote (if on) is started by the first load


async def test_apply_config_returning_false_is_config_invalid(sup: Supervisor) -> None:
    with pytest.raises(ConfigInvalid) as info:
        await sup.load(CONFIGURED, config={"api_key": "refuse-me"})
    assert info.value.rule == "apply_config"
    assert sup.modules == {}


async def test_invalid_schema_is_reported_as_such(sup: Supervisor) -> None:
    with pytest.raises(ConfigInvalid) as info:
        await sup.load(BAD_SCHEMA, config={"n": 3})
    assert info.value.rule == "schema"
    assert "not a valid JSON Schema" in str(info.value)


async def test_schema_is_part_of_the_description(sup: Supervisor) -> None:
    handle = await sup.load(CONFIGURED, config={"api_key": "k"})
    assert handle.description["schema"]["required"] == ["api_key"]


async def test_config_invalid_is_a_sandbox_error(sup: Supervisor) -> None:
    with pytest.raises(SandboxError):
        await sup.load(CONFIGURED)
