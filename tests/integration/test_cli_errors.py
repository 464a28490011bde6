"""The command line answers ordinary mistakes with one error line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plexisandbox", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["run"], id="run"),
        pytest.param(["policy"], id="policy"),
        pytest.param(["validate"], id="validate"),
        pytest.param(["bench", "--call", "echo", "-n", "5"], id="bench"),
    ],
)
def test_unknown_package_module_is_one_error_line(command: list[str]) -> None:
    done = _cli(command[0], "no_such_package_xyz:Thing", *command[1:])
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("plexisandbox: error:"), done.stderr
    assert "no_such_package_xyz" in last


_HANGS_AT_IMPORT = """
import time
from plexisandbox.interfaces import BaseModule, ModulePermissions

time.sleep(120)


class HangsAtImport(BaseModule):
    def get_metadata(self):
        return {"name": "hangs", "version": "1", "description": "x", "author": "x"}

    def get_required_permissions(self):
        return ModulePermissions()
"""


def test_module_hanging_at_import_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    module = tmp_path / "hangs_at_import.py"
    module.write_text(_HANGS_AT_IMPORT)
    # describe() (--grant-requested, policy) gives the import 20 s; both commands at once.
    commands = [
        ["policy", str(module)],
        ["bench", str(module), "--call", "echo", "--grant-requested", "-n", "5"],
    ]
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "plexisandbox", *command],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    for process in running:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode in (1, 2), stderr
        assert "Traceback" not in stderr, stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("plexisandbox: error:"), stderr
        assert "hangs_at_import" in last
        assert "took longer than 20s" in last
