"""`plexisandbox bench`: the suite's JSON, --plot, execnet, and `bench MODULE --call`.

Benchmarks are not timed unit tests: these check that every section runs on real workers and
reports sane, consistent numbers, never how fast anything is.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plexisandbox._bench_baselines import execnet_rtt
from plexisandbox._bench_module import HOOK, BenchUsageError, bench_module
from plexisandbox._cli import main
from tests.conftest import EXAMPLES, ROOT, TEST_MODULES

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAS_EXECNET = importlib.util.find_spec("execnet") is not None
ECHO = str(EXAMPLES / "echo.py")
PNG = b"\x89PNG\r\n\x1a\n"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plexisandbox", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path | None]:
    """One `bench --quick --json` run (with --plot when matplotlib is there) for every test."""
    plot = tmp_path_factory.mktemp("bench") / "suite.png" if HAS_MATPLOTLIB else None
    done = _run("--quick", "--json", *(["--plot", str(plot)] if plot else []))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), plot


@pytest.mark.timeout(300)
def test_quick_suite_json_has_the_documented_keys(
    quick_suite: tuple[dict[str, Any], Path | None],
) -> None:
    out, _ = quick_suite
    assert out["machine"]
    for key in ("sandbox", "raw_pipe", "mp_pipe", "in_process"):
        assert out["rtt_p50_us"][key] > 0
        assert out["rtt_p99_us"][key] >= out["rtt_p50_us"][key]
    assert out["throughput_calls_s"]["sandbox"] > 0
    assert out["throughput_calls_s"]["raw_pipe"] > 0
    assert out["cold_start_p50_ms"]["plain"] > 0
    assert out["cold_start_p50_ms"]["zygote"] > 0
    assert out["idle_uss_mib"] > 0
    assert isinstance(out["cold_start_zygote_fallbacks"], int)
    assert set(out["payload_rtt_ms"]) == {str(64 * 1024), str(2**20), str(8 * 2**20)}
    # Ratios from interleaved samples, and both placed regimes, each with its own baselines.
    assert set(out["rtt_ratio"]["asyncio"]) == {"raw_pipe", "mp_pipe"}
    for regime in ("one_cpu", "two_cpus"):
        row = out["placed"][regime]
        assert set(row["rtt_p50_us"]) == {"raw_pipe", "mp_pipe", "sandbox"}
        assert row["ratio_to_raw_pipe"] > 0
        assert row["throughput_calls_s"] > 0
        assert row["raw_pipe_throughput_calls_s"] > 0
        assert row["throughput_ratio_to_raw_pipe"] > 0
    assert out["placed"]["one_cpu"]["cpus"][0] == out["placed"]["one_cpu"]["cpus"][1]
    assert out["placed"]["two_cpus"]["cpus"][0] != out["placed"]["two_cpus"]["cpus"][1]


@pytest.mark.timeout(300)
def test_quick_suite_covers_scale_confinement_and_events(
    quick_suite: tuple[dict[str, Any], Path | None],
) -> None:
    out, _ = quick_suite
    scale = out["many_workers"]
    assert scale["workers"] == 20
    assert scale["answered"] == scale["alive"] == 20
    assert scale["memory"]["uss_mib_median"] > 0
    conf = out["confinement_overhead"]
    assert conf["unconfined"]["layers"] in ([], ["env"])  # env hygiene is not a policy layer
    assert "seccomp" in conf["confined"]["layers"] or "landlock" in conf["confined"]["layers"]
    assert conf["confined"]["start_p50_ms"] > 0
    assert conf["unconfined"]["rtt_p50_us"] > 0
    for row in out["events"]["by_subscribers"].values():
        assert row["events_s"] > 0
        assert row["deliveries_s"] >= row["events_s"]


@pytest.mark.timeout(300)
def test_quick_suite_reports_execnet_or_says_it_is_not_installed(
    quick_suite: tuple[dict[str, Any], Path | None],
) -> None:
    out, _ = quick_suite
    if HAS_EXECNET:
        assert out["rtt_p99_us"]["execnet"] >= out["rtt_p50_us"]["execnet"] > 0
    else:
        assert "execnet" not in out["rtt_p50_us"]
        assert "not installed" in out["baselines_unavailable"]["execnet"]


@pytest.mark.timeout(300)
def test_plot_writes_a_png(quick_suite: tuple[dict[str, Any], Path | None]) -> None:
    if not HAS_MATPLOTLIB:
        pytest.skip("matplotlib is not installed (pip install 'plexisandbox[bench]')")
    _, plot = quick_suite
    assert plot is not None
    assert plot.read_bytes().startswith(PNG)


def test_plot_without_matplotlib_names_the_extra_before_measuring(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from plexisandbox._cli import main\n"
        f"sys.exit(main(['bench', '--quick', '--plot', {str(tmp_path / 'x.png')!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "plexisandbox[bench]" in done.stderr
    assert "bench: baselines" not in done.stderr  # refused before any measurement
    assert not (tmp_path / "x.png").exists()


def test_execnet_baseline_says_not_installed_when_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "execnet", None)
    result = execnet_rtt(10)
    assert isinstance(result, str)
    assert result.startswith("not installed")
    assert "plexisandbox[bench]" in result


def test_bench_module_cli_prints_overhead_json(tmp_path: Path) -> None:
    args = ["--call", "echo", "--args", '{"value": 1}', "-n", "200", "--json"]
    if HAS_MATPLOTLIB:
        args += ["--plot", str(tmp_path / "module.png")]
    done = _run(ECHO, *args, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["module"] == ECHO
    assert out["method"] == "echo"
    assert out["calls"] == {"in_process": 200, "sandbox": 200}
    inside, outside = out["in_process_us"], out["sandbox_us"]
    assert 0 < inside["p50"] <= inside["p99"]
    assert 0 < outside["p50"] <= outside["p99"]
    assert out["overhead_us"] == pytest.approx(outside["p50"] - inside["p50"], abs=0.01)
    assert out["overhead_ratio"] == pytest.approx(outside["p50"] / inside["p50"], rel=0.01)
    assert out["confinement_layers"]
    if HAS_MATPLOTLIB:
        assert (tmp_path / "module.png").read_bytes().startswith(PNG)


def test_bench_module_cli_table_names_both_sides() -> None:
    done = _run(ECHO, "--call", "echo_sync", "--args", '{"value": "x"}', "-n", "50")
    assert done.returncode == 0, done.stderr
    assert "in-process (inside a confined worker)" in done.stdout
    assert "through the sandbox" in done.stdout
    assert "overhead:" in done.stdout


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        pytest.param(
            [ECHO, "--call", "echo", "--args", '{"value": 1'],
            2,
            "is not valid JSON",
            id="bad-json",
        ),
        pytest.param(
            [ECHO, "--call", "echo", "--args", "[1, 2]"],
            2,
            "must be a JSON object",
            id="args-not-object",
        ),
        pytest.param([ECHO], 2, "needs --call METHOD", id="no-call"),
        pytest.param(["--call", "echo"], 2, "need a MODULE", id="no-module"),
        pytest.param(
            [ECHO, "--call", "nope"],
            1,
            "has no API method 'nope'; available: echo, echo_sync",
            id="missing-method",
        ),
        pytest.param(
            [str(EXAMPLES / "absent.py"), "--call", "echo"],
            1,
            "does not exist",
            id="missing-file",
        ),
        pytest.param(
            [str(TEST_MODULES / "broken" / "import_failed.py"), "--call", "x"],
            1,
            "failed to load",
            id="import-fails",
        ),
        pytest.param(
            [ECHO, "--call", "echo", "--args", '{"bogus": 1}'],
            1,
            "check that --args matches",
            id="method-raises",
        ),
    ],
)
def test_bench_module_errors_name_the_module_and_the_fix(
    argv: list[str], code: int, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *argv]) == code
    err = capsys.readouterr().err
    assert expected in err
    if argv[0].endswith(".py"):
        assert Path(argv[0]).name in err


@pytest.mark.anyio
async def test_bench_module_times_in_process_inside_a_worker_never_in_the_host() -> None:
    # where() raises when it finds the host's modules (anyio, the supervisor) loaded: both
    # timings succeed only if the module's code ran in workers alone.
    result = await bench_module(
        f"{TEST_MODULES / 'bench_where.py'}", "where", {"n": 2}, n=30, budget=5.0
    )
    assert result["calls"] == {"in_process": 30, "sandbox": 30}
    assert result["in_process_us"]["p50"] > 0
    assert not [name for name in sys.modules if name.endswith("bench_where")]


@pytest.mark.anyio
async def test_bench_module_refuses_a_method_outside_the_api() -> None:
    with pytest.raises(BenchUsageError, match="has no API method") as caught:
        await bench_module(ECHO, HOOK, {}, n=5, budget=1.0)
    assert "echo.py" in str(caught.value)


@pytest.fixture
def readable_tmp() -> Iterator[Path]:
    """A temporary folder workers can read (they may run under their own uid, and pytest's
    tmp_path lies inside a folder only the host's user may enter)."""
    path = Path(tempfile.mkdtemp(prefix="plexisandbox-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.anyio
async def test_bench_module_times_a_module_that_imports_a_file_beside_it(
    readable_tmp: Path,
) -> None:
    (readable_tmp / "helper.py").write_text("FACTOR = 3\n")
    source = (TEST_MODULES / "bench_where.py").read_text()
    (readable_tmp / "uses_helper.py").write_text(
        source.replace("import os\n", "import os\n\nimport helper\n").replace(
            "os.getpid() * n", "os.getpid() * n * helper.FACTOR"
        )
    )
    result = await bench_module(str(readable_tmp / "uses_helper.py"), "where", {}, n=20, budget=5.0)
    assert result["calls"] == {"in_process": 20, "sandbox": 20}
