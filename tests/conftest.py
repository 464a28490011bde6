"""Shared fixtures: every async test runs under asyncio and trio (anyio's pytest plugin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "modules"
TEST_MODULES = ROOT / "tests" / "modules"
MUST_CONFINE = os.environ.get("PLEXISANDBOX_MUST_CONFINE") == "1"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def skip_or_fail(reason: str) -> None:
    """Skip when this kernel lacks a feature; fail instead under PLEXISANDBOX_MUST_CONFINE=1."""
    if MUST_CONFINE:
        pytest.fail(f"PLEXISANDBOX_MUST_CONFINE=1 but {reason}")
    pytest.skip(reason)
