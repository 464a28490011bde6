"""Every kind of source `Supervisor.load()` accepts, and the seed's import path (asyncio, trio).

A `.py` path (str or Path, optionally `:Class`), `"pkg.mod:Class"`, an entry point of group
`plexisandbox.modules`, a class object (by reference when importable, by value otherwise), and
a module written against `plexichat.infrastructure.modules.interfaces`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from plexisandbox import Supervisor
from plexisandbox.errors import ModuleError
from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions, ModuleState
from tests.conftest import TEST_MODULES
from tests.modules.probe import Probe

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor() as supervisor:
        yield supervisor


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder the worker can read: workers may run under their own uid, and
    pytest's tmp_path lies inside a folder only the host's user may enter."""
    path = Path(tempfile.mkdtemp(prefix="plexisandbox-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pkg_probe` importable, as an installed package would be."""
    monkeypatch.syspath_prepend(str(TEST_MODULES))


async def test_py_path_as_str_and_as_path(sup: Supervisor) -> None:
    as_str = await sup.load(str(TEST_MODULES / "probe.py"), name="as-str")
    as_path = await sup.load(TEST_MODULES / "probe.py", name="as-path")
    for handle in (as_str, as_path):
        await handle.start()
        assert await handle.call("echo", value="ok") == "ok"
    assert as_str.description["class"] == "plexisandbox_module_probe.Probe"


async def test_default_name_is_the_file_stem(sup: Supervisor) -> None:
    handle = await sup.load(TEST_MODULES / "probe.py")
    assert handle.name == "probe"
    assert set(sup.modules) == {"probe"}


async def test_py_path_with_class_picks_one_of_several(sup: Supervisor) -> None:
    second = await sup.load(f"{TEST_MODULES / 'two_classes.py'}:Second")
    await second.start()
    assert second.name == "Second"
    assert await second.call("which") == "Second"


async def test_py_path_with_several_classes_and_none_named_is_refused(sup: Supervisor) -> None:
    with pytest.raises(ModuleError) as info:
        await sup.load(TEST_MODULES / "two_classes.py")
    assert info.value.remote_type == "LookupError"
    assert "several module classes (First, Second);" in str(info.value)
    assert "two_classes.py:ClassName" in str(info.value)
    assert sup.modules == {}


async def test_package_module_class(sup: Supervisor, on_path: None) -> None:
    handle = await sup.load("pkg_probe.mod:PkgModule")
    await handle.start()
    assert handle.name == "PkgModule"
    assert handle.description["version"] == "2.0.0"
    assert await handle.call("hello", who="tests") == "hello, tests from pkg_probe.mod"


async def test_entry_point(sup: Supervisor, on_path: None, tmp_path: Path) -> None:
    dist = tmp_path / "plexisandbox_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: plexisandbox-test-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[plexisandbox.modules]\ntest-greeter = pkg_probe.mod:PkgModule\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        handle = await sup.load("test-greeter")
    finally:
        sys.path.remove(str(tmp_path))
    assert handle.name == "test-greeter"
    await handle.start()
    assert await handle.call("hello") == "hello, world from pkg_probe.mod"


async def test_unknown_names_are_refused_with_the_accepted_forms(sup: Supervisor) -> None:
    with pytest.raises(LookupError, match=r"entry point in group 'plexisandbox\.modules'"):
        await sup.load("no-such-plugin")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        await sup.load(TEST_MODULES / "missing.py")
    with pytest.raises(ModuleNotFoundError, match="cannot find Python module"):
        await sup.load("no_such_package.mod:Thing")
    with pytest.raises(TypeError, match="not a BaseModule subclass"):
        await sup.load(dict)
    with pytest.raises(TypeError, match="cannot load a module from int"):
        await sup.load(42)
    assert sup.modules == {}


async def test_importable_class_object_is_shipped_by_reference(sup: Supervisor) -> None:
    handle = await sup.load(Probe)
    assert handle.source.spec["kind"] == "import"
    await handle.start()
    assert handle.name == "Probe"
    assert await handle.call("echo", value=3) == 3
    assert handle.description["class"] == "tests.modules.probe.Probe"


async def test_class_defined_in_a_function_is_shipped_by_value(sup: Supervisor) -> None:
    class Inline(BaseModule):
        def __init__(self) -> None:
            super().__init__("inline")

        async def initialize(self) -> bool:
            return True

        def get_metadata(self) -> dict[str, Any]:
            return {"inline": True}

        def get_required_permissions(self) -> ModulePermissions:
            return ModulePermissions()

        async def square(self, x: int) -> int:
            return x * x

    handle = await sup.load(Inline)
    assert handle.source.spec["kind"] == "pickled"
    await handle.start()
    assert await handle.call("square", x=12) == 144


async def test_module_written_against_the_seed_path_loads_unchanged(sup: Supervisor) -> None:
    grant = ModulePermissions(capabilities=[ModuleCapability.MESSAGING], database_access=True)
    handle = await sup.load(TEST_MODULES / "seed_path.py", grant=grant)
    assert handle.name == "seed_path"  # a file's stem, unless name= says otherwise
    assert handle.description["name"] == "MyModule"
    assert handle.declared is not None
    assert handle.declared.database_access
    assert [c.value for c in handle.declared.capabilities] == ["messaging"]
    assert handle.description["metadata"]["description"] == "My custom module"
    await handle.start()
    assert await handle.call("whoami") == {
        "base": "plexisandbox.interfaces.BaseModule",
        "same_contract": True,
        "state": ModuleState.ACTIVE.value,
        "states": 9,
    }


async def test_helper_base_class_beside_the_module_class_is_not_a_candidate(
    sup: Supervisor, shared_tmp: Path
) -> None:
    tmp_path = shared_tmp
    source = (TEST_MODULES / "two_classes.py").read_text()
    # One public module class built on a private helper base and a public base: unambiguous.
    single = source.split("class First(_Common):")[0] + (
        "class Base(_Common):\n"
        "    pass\n\n\n"
        "class Only(Base):\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__('only')\n"
    )
    (tmp_path / "single.py").write_text(single)
    handle = await sup.load(tmp_path / "single.py")
    await handle.start()
    assert await handle.call("which") == "Only"


async def test_package_loads_when_its_root_was_not_on_the_path_at_first_launch(
    sup: Supervisor, shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = shared_tmp
    # Start a worker first, so the host's library paths are fixed without this root.
    first = await sup.load(TEST_MODULES / "probe.py")
    await first.start()
    package = tmp_path / "late_pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "impl.py").write_text(
        (TEST_MODULES / "pkg_probe" / "mod.py")
        .read_text()
        .replace("from .helper import GREETING", "GREETING = 'late'")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    handle = await sup.load("late_pkg.sub.impl:PkgModule")
    await handle.start()
    assert await handle.call("hello") == "late, world from late_pkg.sub.impl"


async def test_py_path_with_a_colon_in_a_folder_name(sup: Supervisor, shared_tmp: Path) -> None:
    folder = shared_tmp / "build:2024"
    folder.mkdir()
    folder.chmod(0o755)
    target = folder / "probe_copy.py"
    target.write_text((TEST_MODULES / "probe.py").read_text())
    for source in (target, str(target), f"{target}:Probe"):
        handle = await sup.load(source, name="colon")
        await handle.start()
        assert await handle.call("echo", value=source is target) == (source is target)
        await sup.unload("colon")
