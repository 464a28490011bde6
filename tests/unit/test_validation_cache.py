"""Validation caches: an unchanged module is not parsed or checked again; a changed one is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from plexisandbox._limits import Limits
from plexisandbox._validation import _facts, _run, validate_description
from plexisandbox._validation._facts import read_facts
from tests.conftest import EXAMPLES


def _description(api_version: str = "1.0.0") -> dict[str, Any]:
    """What a worker reports for examples/modules/echo.py."""
    param = [{"name": "value", "kind": "POSITIONAL_OR_KEYWORD", "required": False}]
    return {
        "class": "plexisandbox_module_echo.EchoModule",
        "name": "echo",
        "version": "1.0.0",
        "permissions": {
            "network_access": False,
            "file_system_access": False,
            "database_access": False,
            "admin_access": False,
            "user_data_access": False,
            "system_config_access": False,
            "external_api_access": False,
            "capabilities": [],
        },
        "schema": {"type": "object"},
        "metadata": {
            "name": "echo",
            "version": "1.0.0",
            "description": "Echoes its arguments",
            "author": "plexisandbox",
        },
        "methods": ["echo", "echo_sync"],
        "api_version": api_version,
        "subscriptions": [],
        "signatures": {
            "echo": {"exists": True, "callable": True, "params": param, "is_async": True},
            "echo_sync": {"exists": True, "callable": True, "params": param, "is_async": False},
        },
    }


@pytest.fixture
def echo(tmp_path: Path) -> Path:
    path = tmp_path / "echo.py"
    shutil.copy(EXAMPLES / "echo.py", path)
    return path


def _rewrite_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """Change the file's content while keeping its size and mtime: only the inode's change
    time (and the bytes) tell the new version from the old."""
    assert len(old) == len(new)
    st = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert path.stat().st_mtime_ns == st.st_mtime_ns


def _count_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hops: list[int] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(*args: Any, **kwargs: Any) -> Any:
        hops.append(1)
        return await run_sync(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


def test_facts_of_an_unchanged_file_are_parsed_once(echo: Path) -> None:
    first = read_facts(str(echo))
    assert read_facts(str(echo)) is first
    assert read_facts(str(echo), display="other") is not first  # the display is in the facts


def test_facts_of_a_modified_file_are_parsed_again(echo: Path) -> None:
    first = read_facts(str(echo))
    assert first.module_class is not None
    assert first.module_class.methods["initialize"].is_async
    _rewrite_keeping_size_and_mtime(echo, "async def initialize", "def initialize      ")
    second = read_facts(str(echo))
    assert second is not first
    assert second.module_class is not None
    assert not second.module_class.methods["initialize"].is_async


def test_facts_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_facts, "_facts_cache", type(_facts._facts_cache)())
    for i in range(_facts._FACTS_CACHE_SIZE + 5):
        path = tmp_path / f"m{i}.py"
        path.write_text("x = 1\n")
        read_facts(str(path))
    assert len(_facts._facts_cache) == _facts._FACTS_CACHE_SIZE


@pytest.mark.anyio
async def test_report_of_an_unchanged_module_is_reused_without_a_thread(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _count_threads(monkeypatch)
    description = _description()
    first = await validate_description(description, file=str(echo), label="echo")
    assert hops == [1]  # one thread hop for the facts and the checks together
    again = _description()
    second = await validate_description(again, file=str(echo), label="echo")
    assert hops == [1]
    assert second == {**first, "description": again}
    assert second is not first
    assert second["description"] is again
    second["warnings"].append({"rule": "x"})  # a caller's copy is its own
    third = await validate_description(_description(), file=str(echo), label="echo")
    assert third["warnings"] == first["warnings"]


@pytest.mark.anyio
async def test_report_of_a_modified_module_is_computed_again(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _count_threads(monkeypatch)
    first = await validate_description(_description(), file=str(echo), label="echo")
    assert first["is_valid"]
    _rewrite_keeping_size_and_mtime(echo, "async def initialize", "def initialize      ")
    second = await validate_description(_description(), file=str(echo), label="echo")
    assert len(hops) == 2
    assert not second["is_valid"]
    assert "signature.lifecycle-not-async" in {i["rule"] for i in second["violations"]}


@pytest.mark.anyio
async def test_report_depends_on_description_label_and_limits(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _count_threads(monkeypatch)
    await validate_description(_description(), file=str(echo), label="echo")
    bad = await validate_description(_description("one"), file=str(echo), label="echo")
    assert "api.version-format" in {i["rule"] for i in bad["violations"]}
    await validate_description(_description(), file=str(echo), label="other")
    await validate_description(
        _description(), file=str(echo), label="echo", base_limits=Limits(memory_mb=64)
    )
    assert len(hops) == 4


@pytest.mark.anyio
async def test_report_with_a_failed_schema_check_is_not_reused(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _count_threads(monkeypatch)
    failed = [{"rule": "config.schema-check-failed", "message": "took longer than 2s"}]
    monkeypatch.setattr(
        "plexisandbox._validation._checks_decl.check_schema_isolated", lambda schema: failed
    )
    description = _description()
    description["schema"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for _ in range(2):
        report = await validate_description(description, file=str(echo), label="echo")
        assert "config.schema-check-failed" in {i["rule"] for i in report["warnings"]} | {
            i["rule"] for i in report["violations"]
        }
    assert len(hops) == 2
    assert all(key[2] != "echo" or key[0] != str(echo) for key in _run._reports)


@pytest.mark.anyio
async def test_report_of_a_huge_description_is_not_kept(
    echo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A description is module output: one of more than 1 MiB (packed) is validated each
    time instead of pinning its bytes in the cache (64 of them could hold ~1 GiB)."""
    hops = _count_threads(monkeypatch)
    description = _description()
    description["metadata"] = {**description["metadata"], "padding": "x" * (2 << 20)}
    for _ in range(2):
        await validate_description(description, file=str(echo), label="huge")
    assert len(hops) == 2
    assert all(key[2] != "huge" for key in _run._reports)
