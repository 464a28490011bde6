"""The host's compiled-module cache: compiled once per file version, never where unsafe."""

from __future__ import annotations

import marshal
import os
import shutil
from pathlib import Path

import pytest

from plexisandbox import _compiled
from plexisandbox._compiled import MAX_SOURCE_BYTES, PARSE_LOCK, compiled_module
from tests.conftest import EXAMPLES


@pytest.fixture
def echo(tmp_path: Path) -> Path:
    path = tmp_path / "echo.py"
    shutil.copy(EXAMPLES / "echo.py", path)
    return path


def _names(data: bytes | None) -> set[str]:
    assert data is not None
    return set(marshal.loads(data).co_names)


def test_module_is_compiled_as_the_importer_would(echo: Path) -> None:
    data = compiled_module(str(echo))
    assert data is not None
    code = marshal.loads(data)
    expected = compile(echo.read_bytes(), str(echo), "exec", dont_inherit=True, optimize=0)
    assert code == expected
    assert code.co_filename == str(echo)


def test_unchanged_file_is_compiled_once(echo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = compiled_module(str(echo))
    monkeypatch.setattr(_compiled, "compile", _fail, raising=False)
    assert compiled_module(str(echo)) is first


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("compiled again")


def test_modified_file_is_compiled_again(echo: Path) -> None:
    first = compiled_module(str(echo))
    assert "Any" in _names(first)
    st = echo.stat()
    # Same size, same mtime: only the change time (and the bytes) differ.
    echo.write_text(echo.read_text().replace("from typing import Any", "from typing import Set"))
    os.utime(echo, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert echo.stat().st_size == st.st_size
    second = compiled_module(str(echo))
    assert second != first
    assert "Set" in _names(second)


def test_file_with_a_syntax_error_is_left_to_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def broken(:\n")
    assert compiled_module(str(path)) is None


def test_file_whose_compilation_warns_is_left_to_the_worker(tmp_path: Path) -> None:
    # The worker prints the warning into the module's output, as it always did; the host
    # neither prints it nor swallows it.
    path = tmp_path / "warns.py"
    path.write_text("x = 1\nif x is 1:\n    pass\n")
    assert compiled_module(str(path)) is None


def test_large_file_is_left_to_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "large.py"
    path.write_text("x = 1\n" + "#" * MAX_SOURCE_BYTES + "\n")
    assert compiled_module(str(path)) is None


def test_missing_file_is_left_to_the_worker(tmp_path: Path) -> None:
    assert compiled_module(str(tmp_path / "missing.py")) is None


def test_compile_never_waits_for_a_parse_in_another_thread(echo: Path) -> None:
    with PARSE_LOCK:
        assert compiled_module(str(echo)) is None
    assert compiled_module(str(echo)) is not None


def test_file_with_finally_is_left_to_the_worker(tmp_path: Path) -> None:
    # Each way out of a try emits its finally body again, and nested ones multiply: a
    # kilobyte can compile to gigabytes (tests/hostile: the finally bomb).
    path = tmp_path / "finally.py"
    path.write_text("try:\n    x = 1\nfinally:\n    x = 2\n")
    assert compiled_module(str(path)) is None
