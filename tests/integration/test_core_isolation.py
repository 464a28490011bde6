"""The worker inherits nothing from the host: a fresh interpreter (asyncio and trio).

No host environment, no host `__main__`, no host descriptors, its own session, and none of
the supervisor's modules loaded. Each answer comes from inside the worker (the probe module).
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plexisandbox import ModuleHandle, Supervisor
from tests.conftest import TEST_MODULES, inheritable_host_fds

pytestmark = pytest.mark.anyio
PROBE = TEST_MODULES / "probe.py"


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor() as supervisor:
        yield supervisor


async def _probe(sup: Supervisor, **kwargs: Any) -> ModuleHandle:
    handle = await sup.load(PROBE, **kwargs)
    await handle.start()
    return handle


def _digest(secret: str) -> dict[str, Any]:
    return {"length": len(secret), "sha256": hashlib.sha256(secret.encode()).hexdigest()}


async def test_worker_holds_no_host_secrets(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_secret = f"env-secret-{uuid.uuid4()}"
    main_secret = f"main-secret-{uuid.uuid4()}"
    positive_control = f"config-value-{uuid.uuid4()}"
    monkeypatch.setenv("PLEXISANDBOX_TEST_SECRET", env_secret)
    monkeypatch.setattr(
        sys.modules["__main__"], "PLEXISANDBOX_MAIN_SECRET", main_secret, raising=False
    )
    assert os.environ["PLEXISANDBOX_TEST_SECRET"] == env_secret

    probe = await _probe(sup, config={"marker": positive_control})
    who = await probe.call("identity")
    assert "PLEXISANDBOX_TEST_SECRET" not in who["environ"]
    assert env_secret not in who["environ"].values()
    if who["proc_environ"] is not None:  # the environment the process was exec'd with
        assert not any(env_secret in entry for entry in who["proc_environ"])
    assert "PLEXISANDBOX_MAIN_SECRET" not in who["main_names"]
    # The strings themselves are nowhere in the worker's memory reachable from Python objects
    # (only their digests travel; the search itself is proven by the positive control).
    assert await probe.call("holds_string", **_digest(env_secret)) == []
    assert await probe.call("holds_string", **_digest(main_secret)) == []
    assert await probe.call("holds_string", **_digest(positive_control)) != []


async def test_worker_environment_is_the_policy_allow_list(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/host/only")
    monkeypatch.setenv("LD_PRELOAD", "/host/evil.so")
    probe = await _probe(sup)
    who = await probe.call("identity")
    assert probe.policy is not None
    allowed = {key for key, _ in probe.policy.env}
    assert set(who["environ"]) <= allowed
    assert "/host/only" not in who["path"]
    assert "LD_PRELOAD" not in who["environ"]


async def test_worker_is_a_fresh_interpreter_never_a_fork_of_the_host(sup: Supervisor) -> None:
    probe = await _probe(sup)
    who = await probe.call("identity")
    assert who["pid"] == probe.pid
    # The host itself, or with PLEXISANDBOX_ZYGOTE=1 the zygote: a fresh interpreter the host
    # started the same way, which forks workers before anything of a module is loaded.
    assert who["ppid"] in {os.getpid(), sup.zygote.pid if sup.zygote else None}
    assert who["isolated"] == 1  # python -I: no PYTHON* variables, no user site, no cwd
    assert who["no_site"] == 1
    assert who["executable"] == sys.executable
    assert who["main_file"] is None  # `python -c`: the host's __main__ was never imported
    modules = set(await probe.call("sys_modules"))
    # A fork of this host would carry pytest along.
    assert "pytest" not in modules
    assert "_pytest" not in modules
    assert "tests.conftest" not in modules


async def test_worker_runs_in_its_own_session_at_the_root(sup: Supervisor) -> None:
    probe = await _probe(sup)
    who = await probe.call("identity")
    assert who["sid"] == who["pid"]  # session leader: no controlling terminal shared with us
    assert who["pgid"] == who["pid"]
    assert who["sid"] != os.getsid(0)
    assert who["cwd"] == "/"


async def test_worker_does_not_import_the_supervisor_side(sup: Supervisor) -> None:
    probe = await _probe(sup)
    modules = set(await probe.call("sys_modules"))
    assert "plexisandbox_worker.main" in modules  # positive control
    assert "plexisandbox.interfaces" in modules
    forbidden = {
        "anyio",
        "psutil",
        "trio",
        "sniffio",
        "plexisandbox._supervisor",
        "plexisandbox._handle",
        "plexisandbox._worker",
        "plexisandbox._launcher",
        "plexisandbox._watchdog",
    }
    assert modules.isdisjoint(forbidden), sorted(modules & forbidden)
    assert not any(m.startswith(("anyio.", "psutil.", "trio.")) for m in modules)


async def test_only_the_channel_descriptors_are_open_in_the_worker(
    sup: Supervisor, tmp_path: Path
) -> None:
    with inheritable_host_fds(tmp_path):
        probe = await _probe(sup)
        report = await probe.call("fds")
    fds = {fd: (kind, link) for fd, kind, link in report["fds"]}
    loop_owned = set(report["loop"])  # the worker's own event loop: epoll fd and self-pipe
    theirs = {fd: v for fd, v in fds.items() if fd not in loop_owned}
    assert fds[0][0] == "chr"  # stdin is /dev/null
    assert fds[1][0] == fds[2][0] == "pipe"  # stdout and stderr: the output pipe
    others = {fd: v for fd, v in theirs.items() if fd > 2}
    kinds = sorted(kind for kind, _ in others.values())
    assert kinds == ["pipe", "pipe", "pipe"], theirs  # data in, data out, control
    assert not any(kind in ("file", "dir") for kind, _ in fds.values()), fds
    assert all(fds[fd][0] in ("socket", "other") for fd in loop_owned)

    # Every pipe the worker holds is one of the channel's: match pipe inodes with the host's
    # ends (the links are readable unless /proc is closed to the worker).
    links = [link for _, link in theirs.values() if link.startswith("pipe:")]
    if len(links) == 5:
        conn = probe._conn
        assert conn is not None
        ours = {
            os.fstat(fd).st_ino
            for fd in (
                conn.launched.data_read,
                conn.launched.data_write,
                conn.launched.ctl_write,
                conn.launched.output_read,
            )
        }
        assert {int(link[6:-1]) for link in links} == ours
        assert "/dev/null" in fds[0][1]


async def test_worker_keeps_no_listing_of_folders_it_cannot_read(sup: Supervisor) -> None:
    # Imports before confinement list every sys.path folder (the host's checkout among them);
    # those listings must not survive into module code once the folders are closed to it.
    probe = await _probe(sup)
    caches = await probe.call("import_caches")
    assert caches, "the probe's own folder at least is listed"
    unreadable = {path for path, entry in caches.items() if not entry["readable"]}
    assert not unreadable, unreadable
