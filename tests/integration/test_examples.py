"""Smoke tests: the console demo, the CLI commands and `plexisandbox bench --quick` run."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import EXAMPLES, ROOT


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_console_demo_runs() -> None:
    done = _run("examples/demo.py")
    assert done.returncode == 0, done.stderr
    assert "dice  ->" in done.stdout
    assert "MyModule refused as expected: ('database_access', 'messaging')" in done.stdout


def test_cli_run_calls_a_method_and_prints_json() -> None:
    done = _run(
        "-m",
        "plexisandbox",
        "run",
        str(EXAMPLES / "dice.py"),
        "--call",
        "roll",
        "--args",
        '{"spec": "3d6"}',
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["rolls"]) == 3
    assert result["total"] == sum(result["rolls"])


def test_cli_run_refuses_ungranted_module_with_one_line_reason() -> None:
    done = _run("-m", "plexisandbox", "run", str(EXAMPLES / "my_module.py"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("plexisandbox: error: PermissionDenied:")
    assert "database_access, messaging" in lines[-1]


def test_cli_run_reports_a_bad_args_json() -> None:
    done = _run(
        "-m",
        "plexisandbox",
        "run",
        str(EXAMPLES / "dice.py"),
        "--call",
        "roll",
        "--args",
        "{not json",
    )
    assert done.returncode == 2
    assert "--args is not valid JSON" in done.stderr


def test_cli_policy_explains_every_rule_and_the_missing_grant() -> None:
    done = _run("-m", "plexisandbox", "policy", str(EXAMPLES / "example_module.py"), "--json")
    assert done.returncode == 1  # not granted: the load would be refused
    report = json.loads(done.stdout)
    assert set(report["missing"]) == {"external_api", "external_api_access", "network_access"}
    granted = _run(
        "-m", "plexisandbox", "policy", str(EXAMPLES / "example_module.py"), "--grant-requested"
    )
    assert granted.returncode == 0, granted.stderr
    assert "network_access" in granted.stdout
