"""The versioned handshake, spoken by hand to a real worker (no supervisor, no event loop).

Both sides compare `WIRE_VERSION` first; a mismatch names both versions and the fix.
"""

from __future__ import annotations

import os
import select
from typing import Any

import pytest

import plexisandbox._worker
from plexisandbox import Supervisor
from plexisandbox._launcher import LaunchedWorker, launch_worker
from plexisandbox._protocol import WIRE_VERSION, FrameDecoder, Op, check_shape, encode
from plexisandbox.errors import ProtocolViolation
from tests.conftest import TEST_MODULES

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _read(worker: LaunchedWorker, decoder: FrameDecoder, timeout: float = 20.0) -> Any:
    while True:
        ready, _, _ = select.select([worker.data_read], [], [], timeout)
        assert ready, "the worker said nothing"
        data = os.read(worker.data_read, 65536)
        assert data, "the worker closed its channel"
        messages = decoder.feed(data)
        if messages:
            assert len(messages) == 1
            return messages[0]


def _send(worker: LaunchedWorker, message: Any) -> None:
    os.set_blocking(worker.data_write, True)
    os.write(worker.data_write, encode(message))


def test_worker_speaks_first_with_its_wire_version() -> None:
    worker = launch_worker(ENV)
    try:
        hello = _read(worker, FrameDecoder())
        assert check_shape(hello) is Op.HELLO
        assert hello[1]["wire"] == WIRE_VERSION
        assert hello[1]["pid"] == worker.pid
    finally:
        worker.process.kill()
        worker.process.wait()
        worker.close()


def test_worker_refuses_a_boot_of_another_wire_version() -> None:
    worker = launch_worker(ENV)
    try:
        decoder = FrameDecoder()
        _read(worker, decoder)
        _send(worker, [Op.BOOT, {"wire": WIRE_VERSION + 1}])
        fatal = _read(worker, decoder)
        assert check_shape(fatal) is Op.FATAL
        _, stage, kind, message, _ = fatal
        assert stage == "handshake"
        assert kind == "ValueError"
        assert f"supervisor speaks v{WIRE_VERSION + 1}, worker speaks v{WIRE_VERSION}" in message
        assert "reinstall plexisandbox" in message
        assert worker.process.wait(timeout=20) == 69  # EXIT_PROTOCOL
    finally:
        worker.process.kill()
        worker.process.wait()
        worker.close()


def test_worker_exits_quietly_when_the_host_hangs_up_before_boot() -> None:
    worker = launch_worker(ENV)
    try:
        _read(worker, FrameDecoder())
        os.close(worker.data_write)
        worker.data_write = os.open(os.devnull, os.O_RDONLY)  # keep close() simple
        assert worker.process.wait(timeout=20) == 0
    finally:
        worker.process.kill()
        worker.process.wait()
        worker.close()


@pytest.mark.anyio
async def test_supervisor_refuses_a_worker_of_another_wire_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plexisandbox._worker, "WIRE_VERSION", WIRE_VERSION + 1)
    async with Supervisor() as sup:
        with pytest.raises(ProtocolViolation) as info:
            await sup.load(TEST_MODULES / "probe.py")
        message = str(info.value)
        assert f"supervisor speaks v{WIRE_VERSION + 1}, worker speaks v{WIRE_VERSION}" in message
        assert "reinstall plexisandbox" in message
        assert sup.modules == {}
