"""Workers forked by the zygote (`Supervisor(zygote=True)`) obey the launched worker's rules.

Same confinement, no host secrets, only the channel's descriptors, exit codes and signals
reported as for a launched worker, and nothing survives a SIGKILLed supervisor (asyncio, trio).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from plexisandbox import ModuleHandle, RestartPolicy, RestartStrategy, Supervisor
from plexisandbox._verify import read_status
from plexisandbox._worker import ExitInfo, WorkerConnection
from plexisandbox.errors import WorkerCrashed
from tests.conftest import EXAMPLES, ROOT, TEST_MODULES, inheritable_host_fds, skip_or_fail

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"
ECHO = EXAMPLES / "echo.py"
NO_RESTART = RestartPolicy(strategy=RestartStrategy.TEMPORARY)


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor(zygote=True, restart=NO_RESTART) as supervisor:
        yield supervisor


async def _probe(sup: Supervisor, **kwargs: Any) -> ModuleHandle:
    handle = await sup.load(PROBE, **kwargs)
    await handle.start()
    return handle


async def _until_exited(conn: WorkerConnection | None, timeout: float = 10.0) -> ExitInfo:
    """How the worker ended, once it has."""
    assert conn is not None
    with anyio.fail_after(timeout):
        await conn.exited.wait()
    assert conn.exit_info is not None
    return conn.exit_info


def _gone(pid: int) -> bool:
    """No such process (or only its zombie, about to be reaped by init)."""
    try:
        return read_status(pid).get("State", "").startswith("Z")
    except OSError:
        return True


def _wait_gone(pids: list[int], timeout: float, *, no_zombie: bool = False) -> list[int]:
    """Poll until every pid is gone; return those still there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if not _gone(p) or (no_zombie and os.path.exists(f"/proc/{p}"))]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


def _wait_for_spare(zygote: int, timeout: float = 10.0) -> None:
    """Until the zygote has forked its spare child (shortly after each load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in Path(f"/proc/{zygote}/task/{zygote}/children").read_text().split():
            try:
                if Path(f"/proc/{pid}/comm").read_bytes().strip() == b"plexisbx-spare":
                    return
            except OSError:
                pass
        time.sleep(0.005)
    raise AssertionError("the zygote forked no spare child")


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


async def test_zygote_worker_answers_calls_and_is_the_zygotes_child(sup: Supervisor) -> None:
    probe = await _probe(sup)
    neighbour = await _probe(sup, name="neighbour")
    assert await probe.call("echo", value={"n": [1, 2, 3]}) == {"n": [1, 2, 3]}
    assert await neighbour.call("echo_sync", value="hi") == "hi"
    assert sup.zygote is not None
    assert sup.zygote.pid is not None
    who = await probe.call("identity")
    assert who["pid"] == probe.pid != neighbour.pid
    assert who["ppid"] == sup.zygote.pid  # forked by the zygote, not by this host
    assert who["sid"] == who["pgid"] == who["pid"]  # its own session
    assert who["cwd"] == "/"
    assert who["isolated"] == 1
    assert who["no_site"] == 1
    assert who["main_file"] is None
    modules = set(await probe.call("sys_modules"))
    assert "plexisandbox_worker.main" in modules
    assert not any(m.split(".")[0] in ("anyio", "psutil", "trio", "pytest") for m in modules)
    assert "plexisandbox._supervisor" not in modules


async def test_zygote_worker_has_the_plain_workers_confinement() -> None:
    layers: dict[bool, tuple[tuple[str, ...], dict[str, str], dict[str, str]]] = {}
    for zygote in (False, True):
        async with Supervisor(zygote=zygote) as supervisor:
            probe = await _probe(supervisor)
            assert probe.pid is not None
            status = read_status(probe.pid)
            stats = probe.stats()
            facts = {k: status[k] for k in ("NoNewPrivs", "Seccomp", "CapEff", "CapPrm")}
            ns = {
                kind: os.readlink(f"/proc/{probe.pid}/ns/{kind}")
                != os.readlink(f"/proc/self/ns/{kind}")
                for kind in ("net", "mnt", "user")
            }
            layers[zygote] = (stats.confinement_layers, facts, {k: str(v) for k, v in ns.items()})
            assert (supervisor.zygote is not None) is zygote
    assert layers[True] == layers[False]
    assert "seccomp" in layers[True][0]
    assert layers[True][1]["Seccomp"] == "2"


async def test_zygote_workers_get_distinct_uids_when_root(sup: Supervisor) -> None:
    if os.geteuid() != 0:
        skip_or_fail("per-worker uids are for a root host")
    first, second = await _probe(sup), await _probe(sup, name="second")
    assert first.pid is not None
    assert second.pid is not None
    uid_a = read_status(first.pid)["Uid"].split()
    uid_b = read_status(second.pid)["Uid"].split()
    assert uid_a[0] != uid_b[0]
    assert uid_a[0] != "0"
    assert len(set(uid_a)) == len(set(uid_b)) == 1


async def test_zygote_worker_holds_no_host_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"zygote-secret-{uuid.uuid4()}"
    monkeypatch.setenv("PLEXISANDBOX_TEST_SECRET", secret)
    async with Supervisor(zygote=True) as supervisor:
        probe = await _probe(supervisor)
        who = await probe.call("identity")
        assert supervisor.zygote is not None
        assert supervisor.zygote.pid is not None
        zygote_environ = _environ(supervisor.zygote.pid)
    assert secret.encode() not in zygote_environ
    assert "PLEXISANDBOX_TEST_SECRET" not in who["environ"]
    assert secret not in who["environ"].values()
    if who["proc_environ"] is not None:
        assert not any(secret in entry for entry in who["proc_environ"])
    assert probe.policy is not None
    assert set(who["environ"]) <= {key for key, _ in probe.policy.env}
    sha256 = hashlib.sha256(secret.encode()).hexdigest()
    async with Supervisor(zygote=True) as supervisor:
        probe = await _probe(supervisor)
        assert await probe.call("holds_string", length=len(secret), sha256=sha256) == []


async def test_zygote_worker_holds_only_the_channel_descriptors(
    sup: Supervisor, tmp_path: Path
) -> None:
    # Inheritable host descriptors, opened before the zygote starts (at the first load).
    with inheritable_host_fds(tmp_path):
        probe = await _probe(sup)
        neighbour = await _probe(sup, name="neighbour")  # the zygote holds its fds too
        report = await probe.call("fds")
        assert sup.zygote is not None
        assert sup.zygote.pid is not None
        await anyio.to_thread.run_sync(_wait_for_spare, sup.zygote.pid)
        zygote_fds = {
            fd: os.readlink(f"/proc/{sup.zygote.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{sup.zygote.pid}/fd")
        }
    fds = {fd: (kind, link) for fd, kind, link in report["fds"]}
    theirs = {fd: v for fd, v in fds.items() if fd not in set(report["loop"])}
    assert fds[0][0] == "chr"
    assert fds[1][0] == fds[2][0] == "pipe"
    kinds = sorted(kind for fd, (kind, _) in theirs.items() if fd > 2)
    assert kinds == ["pipe", "pipe", "pipe"], theirs
    links = [link for _, link in theirs.values() if link.startswith("pipe:")]
    if len(links) == 5:  # /proc readable: match the pipe inodes with the host's ends
        conn = probe._conn
        assert conn is not None
        launched = conn.launched
        ours = {
            os.fstat(fd).st_ino
            for fd in (
                launched.data_read,
                launched.data_write,
                launched.ctl_write,
                launched.output_read,
            )
        }
        assert {int(link[6:-1]) for link in links} == ours
    # The zygote itself: stdio, its socket, per worker a pidfd and a status pipe, and its
    # spare child (socketpair, pidfd, both ends of the status pipe); on a root host also the
    # shared empty network namespace and the masked mount namespace, if one was needed.
    assert neighbour.pid is not None
    namespaces = sorted(
        link.partition(":")[0]
        for link in zygote_fds.values()
        if link.startswith(("net:[", "mnt:["))
    )
    assert len(zygote_fds) - len(namespaces) == 3 + 1 + 2 * 2 + 4, zygote_fds
    assert namespaces in ([], ["net"], ["mnt", "net"]), zygote_fds


async def test_zygote_worker_exit_code_is_reported(sup: Supervisor) -> None:
    probe = await _probe(sup)
    conn = probe._conn
    with pytest.raises(WorkerCrashed) as info:
        await probe.call("exit", code=9, last_words="bye from the zygote's child")
    assert info.value.exit_code == 9
    assert info.value.signal is None
    last = await _until_exited(conn)
    assert (last.cause, last.exit_code, last.signal, last.label) == (
        "crash",
        9,
        None,
        "module_error",
    )
    assert "bye from the zygote's child" in last.output_tail


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
async def test_zygote_worker_killed_by_a_signal_is_reported(
    sup: Supervisor, sig: signal.Signals
) -> None:
    probe = await _probe(sup)
    pid, conn = probe.pid, probe._conn
    assert pid is not None
    os.kill(pid, sig)
    last = await _until_exited(conn)
    assert (last.cause, last.exit_code, last.signal) == ("signal", None, sig)
    assert last.label == f"signal:{sig.name}"
    # The zygote keeps no zombie once the host has the status.
    assert await anyio.to_thread.run_sync(lambda: _wait_gone([pid], 5, no_zombie=True)) == []


async def test_supervisor_kill_of_a_zygote_worker_is_recorded_as_killed(sup: Supervisor) -> None:
    probe = await _probe(sup)
    conn = probe._conn
    assert conn is not None
    conn.kill("killed", "test")
    last = await _until_exited(conn)
    assert (last.cause, last.signal) == ("killed", signal.SIGKILL)


async def test_dead_zygote_is_replaced_and_loads_keep_working(
    sup: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plexisandbox.zygote")
    probe = await _probe(sup)
    conn = probe._conn
    assert sup.zygote is not None
    first = sup.zygote.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # Its workers die with it (parent-death signal), reported as SIGKILL.
    last = await _until_exited(conn)
    assert last.signal == signal.SIGKILL
    again = await _probe(sup, name="again")
    assert await again.call("echo", value=1) == 1
    assert sup.zygote.pid not in (None, first)
    assert sup.zygote.restarts == 1
    assert any("zygote" in r.getMessage() and "died" in r.getMessage() for r in caplog.records)


async def test_zygote_that_cannot_start_falls_back_to_launched_workers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import plexisandbox._zygote as zygote_module

    caplog.set_level(logging.WARNING, logger="plexisandbox.zygote")
    monkeypatch.setattr(zygote_module, "_BOOTSTRAP", "import sys; sys.exit(3)")
    async with Supervisor(zygote=True) as supervisor:
        first = await _probe(supervisor)
        second = await _probe(supervisor, name="second")
        assert await first.call("echo", value=1) == 1
        who = await second.call("identity")
        assert who["ppid"] == os.getpid()  # launched, not forked
        assert supervisor.zygote is not None
        assert supervisor.zygote.pid is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("no zygote available" in m for m in messages) == 1  # then it backs off


_ORPHAN_SCRIPT = """
import json, sys, anyio
from plexisandbox import Supervisor

async def main():
    async with Supervisor(zygote=True) as sup:
        handles = [await sup.load(sys.argv[1], name=f"echo{i}") for i in range(3)]
        for handle in handles:
            await handle.start()
            assert await handle.call("echo", value=1) == 1
        print(json.dumps({"zygote": sup.zygote.pid, "workers": [h.pid for h in handles]}),
              flush=True)
        await anyio.sleep(600)

anyio.run(main, backend=sys.argv[2])
"""


async def test_sigkilled_supervisor_leaves_no_zygote_and_no_worker(anyio_backend: str) -> None:
    process = await anyio.open_process(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(ECHO), anyio_backend],
        stdout=subprocess.PIPE,
        stderr=None,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    async with process:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(60):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive()
        pids = json.loads(line)
        everyone = [pids["zygote"], *pids["workers"]]
        assert not any(_gone(pid) for pid in everyone)
        process.kill()  # SIGKILL: no clean-up code of the supervisor's runs
        await process.wait()
        # The zygote dies with the host, the workers with the zygote (parent-death signals).
        assert await anyio.to_thread.run_sync(_wait_gone, everyone, 10.0) == []
