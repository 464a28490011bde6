"""Module output reaches the host's logging under `plexisandbox.module.<name>` (asyncio, trio).

stdout and stderr lines, and records of `self.logger`, arrive tagged with the module's name,
bounded in length, and never on the channel (printing frame-like bytes cannot confuse it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from plexisandbox import ModuleHandle, Supervisor
from plexisandbox._protocol import Op, encode
from tests.conftest import TEST_MODULES

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"
LOGGER = "plexisandbox.module.probe"
MAX_LINE = 2048  # characters of one relayed output line
MAX_RECORD = 8192  # characters of one relayed log record


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Module-scoped, so that one probe worker per backend serves this file."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _capture_module_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="plexisandbox.module")


@pytest.fixture(scope="module")
async def probe(anyio_backend: str) -> AsyncIterator[ModuleHandle]:
    """Every test prints or logs its own distinct text, so they can share one worker."""
    async with Supervisor() as sup:
        handle = await sup.load(PROBE)
        await handle.start()
        yield handle
        assert handle.stats().last_exit is None


async def _record(
    caplog: pytest.LogCaptureFixture, match: Callable[[logging.LogRecord], bool]
) -> logging.LogRecord:
    """The first record `match` accepts; output is relayed asynchronously, so wait for it."""
    with anyio.fail_after(10):
        while True:
            for record in caplog.records:
                if match(record):
                    return record
            await anyio.sleep(0.01)


async def test_stdout_line_is_logged_under_the_module_name(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await probe.call("say", text="hello from stdout")
    record = await _record(caplog, lambda r: r.getMessage() == "hello from stdout")
    assert record.name == LOGGER
    assert record.levelno == logging.INFO


async def test_stderr_line_is_logged_under_the_module_name(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await probe.call("say", text="hello from stderr", stream="stderr")
    record = await _record(caplog, lambda r: r.getMessage() == "hello from stderr")
    assert record.name == LOGGER


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL])
async def test_module_logger_records_keep_their_level(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    await probe.call("log", level=level, text=f"record at {level}")
    record = await _record(caplog, lambda r: r.getMessage() == f"record at {level}")
    assert record.name == LOGGER
    assert record.levelno == level


async def test_debug_records_follow_the_supervisor_log_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="plexisandbox.module")
    async with Supervisor(log_level=logging.DEBUG) as sup:
        verbose = await sup.load(PROBE, name="verbose")
        await verbose.start()
        await verbose.call("log", level=logging.DEBUG, text="debug detail")
        # The module calls itself "probe"; the host tags the record with the handle's name
        # and keeps the module's own logger name in the text.
        record = await _record(caplog, lambda r: r.getMessage().endswith("debug detail"))
        assert record.name == "plexisandbox.module.verbose"
        assert record.getMessage() == "[plexisandbox.module.probe] debug detail"
        assert record.levelno == logging.DEBUG
    async with Supervisor() as sup:  # INFO by default: debug records stay in the worker
        quiet = await sup.load(PROBE, name="quiet")
        await quiet.start()
        await quiet.call("log", level=logging.DEBUG, text="debug hidden")
        await quiet.call("log", level=logging.INFO, text="info shown")
        await _record(caplog, lambda r: r.getMessage().endswith("info shown"))
        assert not any("debug hidden" in r.getMessage() for r in caplog.records)


async def test_logged_exception_carries_its_traceback(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await probe.call("log_exception")
    record = await _record(caplog, lambda r: "something went wrong" in r.getMessage())
    assert record.levelno == logging.ERROR
    assert "ProbeFailure: logged failure" in record.getMessage()
    assert "_explode" in record.getMessage()


async def test_long_output_line_is_bounded_and_the_next_line_intact(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await probe.call("say", text="y" * 100_000)
    await probe.call("say", text="after the long line")
    long = await _record(caplog, lambda r: r.getMessage().startswith("yyyy"))
    assert len(long.getMessage()) <= MAX_LINE + 40
    assert "truncated" in long.getMessage()
    await _record(caplog, lambda r: r.getMessage() == "after the long line")
    assert sum(r.getMessage().startswith("yyyy") for r in caplog.records) == 1


async def test_long_log_record_is_bounded(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await probe.call("log", level=logging.WARNING, text="z" * 100_000)
    record = await _record(caplog, lambda r: r.getMessage().startswith("zzzz"))
    assert len(record.getMessage()) <= MAX_RECORD


async def test_frame_bytes_printed_to_stdout_never_reach_the_channel(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    # A RESULT frame for the next request id, written to stdout: if stdout shared the
    # channel, the host would take it as an answer (or a protocol violation).
    fake = encode([Op.RESULT, 1, "forged"]) + encode([Op.RESULT, 2, "forged"]) + b"\n"
    await probe.call("raw_stdout", data=fake)
    await probe.call("say", text="marker after raw bytes")
    await _record(caplog, lambda r: r.getMessage() == "marker after raw bytes")
    for i in range(20):
        assert await probe.call("echo", value=i) == i
    assert probe.stats().last_exit is None


async def test_output_is_tagged_with_the_handle_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plexisandbox.module")
    async with Supervisor() as sup:
        renamed = await sup.load(PROBE, name="renamed")
        await renamed.start()
        await renamed.call("say", text="who am I")
        record = await _record(caplog, lambda r: r.getMessage() == "who am I")
        assert record.name == "plexisandbox.module.renamed"


async def test_invalid_utf8_output_is_relayed_with_replacements(
    probe: ModuleHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await probe.call("raw_stdout", data=b"bad \xff\xfe bytes\n")
    record = await _record(caplog, lambda r: r.getMessage().startswith("bad "))
    assert record.getMessage() == "bad \ufffd\ufffd bytes"


@pytest.mark.parametrize(
    ("method", "prefix"), [("flood", "flood line"), ("log_flood", "flood record")]
)
async def test_output_flood_is_rate_limited_and_the_drops_are_counted(
    caplog: pytest.LogCaptureFixture, method: str, prefix: str
) -> None:
    async with Supervisor() as sup:  # its own worker: the flood drains the rate bucket
        flooder = await sup.load(PROBE, name="flooder")
        await flooder.start()
        await flooder.call(
            method, **{"lines" if method == "flood" else "records": 20_000}, timeout=60
        )
        await flooder.call("say", text="after the flood")
        with anyio.fail_after(20):
            while True:
                if flooder.stats().output_lines_dropped > 0 and any(
                    "output rate limit" in r.getMessage() for r in caplog.records
                ):
                    break
                await anyio.sleep(0.05)
        relayed = sum(prefix in r.getMessage() for r in caplog.records)
        dropped = flooder.stats().output_lines_dropped
        assert relayed < 20_000
        assert dropped > 0
        warning = next(r for r in caplog.records if "output rate limit" in r.getMessage())
        assert warning.levelno == logging.WARNING
        assert warning.name == "plexisandbox.module.flooder"
        assert await flooder.call("echo", value="alive") == "alive"
