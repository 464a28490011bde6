"""Contract validation with real workers: describe() runs confined, never in the host."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from plexisandbox import Supervisor
from plexisandbox._limits import Limits
from plexisandbox._validation import (
    _schemacheck,
    validate_description,
    validate_module,
    validate_static,
)
from plexisandbox.errors import ConfinementUnavailable
from tests.conftest import EXAMPLES, ROOT, TEST_MODULES, skip_or_fail

pytestmark = pytest.mark.anyio
BROKEN = TEST_MODULES / "broken"
HOSTILE = sorted(
    p for p in (ROOT / "tests" / "hostile" / "modules").glob("*.py") if p.name[0] != "_"
)
OPERATOR_MAX = Limits(memory_mb=1024)


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor() as supervisor:
        yield supervisor


@pytest.fixture(autouse=True)
def _quick_schema_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_schemacheck, "SCHEMA_CHECK_TIMEOUT", 2.0)


async def _validate(source: Any, sup: Supervisor, **kwargs: Any) -> dict[str, Any]:
    try:
        return await validate_module(source, supervisor=sup, **kwargs)
    except ConfinementUnavailable as exc:
        skip_or_fail(f"the sandbox is unavailable here: {exc.layer} ({exc.detail})")
        raise


def _rules(report: dict[str, Any]) -> set[str]:
    return {i["rule"] for i in [*report["violations"], *report["warnings"]]}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
async def test_example_modules_pass_sandboxed_validation(path: Path, sup: Supervisor) -> None:
    report = await _validate(str(path), sup)
    assert report["checks"] == "static+sandboxed"
    assert report["violations"] == []
    assert report["score"] >= 90


def _expectation(path: Path) -> tuple[str, str]:
    words = path.read_text().splitlines()[0].split()
    return words[2], words[3]


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.py")), ids=lambda p: p.stem)
async def test_broken_module_yields_its_rule_after_describe(path: Path, sup: Supervisor) -> None:
    rule, category = _expectation(path)
    report = await _validate(str(path), sup, max_limits=OPERATOR_MAX, timeout=5)
    found = _rules(report)
    # A module the loader cannot instantiate (no class, two classes, abstract) also fails
    # its sandboxed import; every other corpus module describes cleanly.
    assert rule in found
    assert found <= {rule, "interface.import-failed"}
    assert all(
        i["category"] == category
        for i in report["violations"] + report["warnings"]
        if i["rule"] == rule
    )


async def test_import_error_is_reported_with_the_remote_exception(sup: Supervisor) -> None:
    report = await _validate(str(BROKEN / "import_failed.py"), sup)
    (item,) = report["violations"]
    assert item["rule"] == "interface.import-failed"
    assert "RuntimeError" in item["message"]
    assert "cannot be imported" in item["message"]
    assert report["checks"].startswith("static (sandboxed describe failed)")


async def test_slow_import_hits_the_deadline(sup: Supervisor) -> None:
    with anyio.fail_after(30):
        report = await _validate(str(BROKEN / "import_timeout.py"), sup, timeout=2)
    assert _rules(report) == {"performance.import-timeout"}
    # The supervisor still answers after the slow worker was discarded.
    assert (await _validate(str(EXAMPLES / "echo.py"), sup))["is_valid"]


_HOSTILE = '''"""Acts at import time: shell out, write a file, fork — all before anyone calls it."""
import os

ATTEMPTS = {{}}
try:
    ATTEMPTS["system"] = os.system("touch {shell}")
except BaseException as exc:
    ATTEMPTS["system"] = repr(exc)
try:
    with open("{written}", "w") as f:
        f.write("escaped")
    ATTEMPTS["open"] = "ok"
except BaseException as exc:
    ATTEMPTS["open"] = repr(exc)
try:
    pid = os.fork()
    if pid == 0:
        open("{forked}", "w").close()
        os._exit(0)
    ATTEMPTS["fork"] = pid
except BaseException as exc:
    ATTEMPTS["fork"] = repr(exc)

from plexisandbox.interfaces import BaseModule, ModulePermissions


class Hostile(BaseModule):
    """Reports where it ran and what its import-time attempts did."""

    async def initialize(self) -> bool:
        """Nothing."""
        return True

    def get_metadata(self) -> dict:
        """Where it ran."""
        return {{"description": "hostile", "author": "tests", "pid": os.getpid(),
                "attempts": {{k: str(v) for k, v in ATTEMPTS.items()}}}}

    def get_required_permissions(self) -> ModulePermissions:
        """Declares nothing."""
        return ModulePermissions()
'''


async def test_hostile_module_under_validation_is_contained(
    sup: Supervisor, tmp_path: Path
) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    sentinels = {k: outside / f"{k}.sentinel" for k in ("shell", "written", "forked")}
    module_dir = tmp_path / "module"
    module_dir.mkdir()
    module = module_dir / "hostile.py"
    module.write_text(_HOSTILE.format(**{k: str(v) for k, v in sentinels.items()}))

    static = validate_static(str(module))  # parsing alone: nothing may happen
    assert not any(p.exists() for p in sentinels.values())
    assert "security.process-spawn" in _rules(static)

    report = await _validate(str(module), sup)
    assert report["checks"] == "static+sandboxed"
    metadata = report["description"]["metadata"]
    assert metadata["pid"] != os.getpid()  # described in a worker, not here
    assert not any(p.exists() for p in sentinels.values()), metadata["attempts"]
    assert "security.process-spawn" in _rules(report)
    assert report["is_valid"] is False
    # The supervisor and a neighbour module still answer.
    assert (await _validate(str(EXAMPLES / "echo.py"), sup))["is_valid"]


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
async def test_hostile_suite_modules_validate_without_harming_the_host(
    path: Path, sup: Supervisor
) -> None:
    before = set(os.listdir(ROOT))
    report = await _validate(str(path), sup, timeout=10)
    assert {"is_valid", "score", "violations", "warnings"} <= set(report)
    assert set(os.listdir(ROOT)) == before


async def test_description_held_by_the_supervisor_can_be_validated(sup: Supervisor) -> None:
    path = BROKEN / "version_format.py"
    try:
        description = await sup.describe(str(path))
    except ConfinementUnavailable as exc:
        skip_or_fail(f"the sandbox is unavailable here: {exc.layer}")
        raise
    report = await validate_description(description, file=str(path), label="version_format")
    assert _rules(report) == {"api.version-format"}
    assert report["violations"][0]["location"].startswith("version_format:")


async def test_validate_module_without_a_supervisor_uses_a_temporary_one() -> None:
    try:
        report = await validate_module(str(EXAMPLES / "my_module.py"))
    except ConfinementUnavailable as exc:
        skip_or_fail(f"the sandbox is unavailable here: {exc.layer}")
        raise
    assert report["is_valid"]
    assert report["description"]["class"].endswith("MyModule")


async def test_class_object_defined_inline_gets_the_declared_checks(sup: Supervisor) -> None:
    from plexisandbox.interfaces import BaseModule, ModulePermissions

    class Inline(BaseModule):
        """Shipped to the worker by value: there is no source file to parse."""

        async def initialize(self) -> bool:
            return True

        def get_metadata(self) -> dict[str, Any]:
            return {"description": "inline"}

        def get_required_permissions(self) -> ModulePermissions:
            return ModulePermissions()

        def get_api_version(self) -> str:
            return "not a version"

    report = await _validate(Inline, sup)
    assert report["file"] is None
    assert _rules(report) == {"api.version-format", "docs.metadata-author"}
