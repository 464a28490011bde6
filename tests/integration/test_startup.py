"""Start-up shortcuts keep start-up's meaning: BOOT written ahead of the worker's start, the
module compiled by the host once per file version, validation reused per file version.

Each test runs with workers forked by the zygote and with launched ones.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plexisandbox import RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.errors import ContractViolation
from plexisandbox.interfaces import BaseModule, ModulePermissions
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.anyio
NO_RESTART = RestartPolicy(strategy=RestartStrategy.TEMPORARY)


@pytest.fixture(params=[True, False], ids=["zygote", "launched"])
async def sup(request: pytest.FixtureRequest) -> AsyncIterator[Supervisor]:
    async with Supervisor(zygote=request.param, restart=NO_RESTART) as supervisor:
        yield supervisor


def _rewrite_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """Change the module's bytes while keeping its size and mtime (as `cp -p` of an edited
    copy would): only the inode's change time tells the versions apart."""
    assert len(old) == len(new)
    st = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


async def test_module_changed_between_loads_runs_and_is_validated_as_changed(
    sup: Supervisor, tmp_path: Path
) -> None:
    path = tmp_path / "echo.py"
    shutil.copy(EXAMPLES / "echo.py", path)
    handle = await sup.load(path, name="first")
    await handle.start()
    assert await handle.call("echo", value="x") == "x"
    await sup.unload("first")

    _rewrite_keeping_size_and_mtime(path, "return value", "return 'new'")
    handle = await sup.load(path, name="second")
    await handle.start()
    assert await handle.call("echo", value="x") == "new"  # recompiled, not the cached code
    await sup.unload("second")

    _rewrite_keeping_size_and_mtime(path, "async def initialize", "def initialize      ")
    with pytest.raises(ContractViolation) as info:  # validated again, not the cached report
        await sup.load(path, name="third")
    rules = {v["rule"] for v in info.value.report["violations"]}
    assert "signature.lifecycle-not-async" in rules


class _Bulky(BaseModule):
    """A module shipped by value whose BOOT is larger than a pipe holds (64 KiB)."""

    BLOB = bytes(range(256)) * 1200  # ~300 KiB, carried in the pickled class

    def __init__(self) -> None:
        super().__init__("bulky", "1.0.0")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "description": "bulky"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    async def size(self) -> int:
        return len(self.BLOB)


async def test_boot_larger_than_the_pipe_reaches_the_worker_whole(sup: Supervisor) -> None:
    handle = await sup.load(_Bulky, name="bulky", validate=False)
    await handle.start()
    assert await handle.call("size") == len(_Bulky.BLOB)
