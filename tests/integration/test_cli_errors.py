"""The command line answers ordinary mistakes with one error line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

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
