"""What the zygote prepares ahead: the shared empty network namespace, the masked mount
namespace, and the spare child — each confines as much as what a worker would make itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from plexisandbox import RestartPolicy, RestartStrategy, Supervisor
from plexisandbox.interfaces import ModulePermissions
from tests.conftest import TEST_MODULES, skip_or_fail, until

pytestmark = pytest.mark.anyio
SPARE_NAME = b"plexisbx-spare"  # plexisandbox_worker.zygote.SPARE_NAME
PROBE = TEST_MODULES / "probe.py"
NET_CLIENT = Path(__file__).resolve().parents[1] / "hostile" / "modules" / "net_client.py"
NO_RESTART = RestartPolicy(strategy=RestartStrategy.TEMPORARY)

# Runs in a fresh interpreter: join the namespace at argv[1], list its interfaces and flags.
_LIST_INTERFACES = """
import ctypes, fcntl, json, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
assert libc.setns(fd, 0x40000000) == 0, os.strerror(ctypes.get_errno())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out = {}
for _, name in socket.if_nameindex():
    req = struct.pack("16sH14x", name.encode(), 0)
    out[name] = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, req))[1]  # SIOCGIFFLAGS
print(json.dumps(out))
"""


def _ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _interfaces(pid: int) -> dict[str, int]:
    """{name: flags} of every interface in the network namespace of `pid`."""
    listed = subprocess.run(
        [sys.executable, "-I", "-c", _LIST_INTERFACES, f"/proc/{pid}/ns/net"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


def _needs_mask(paths: list[str]) -> bool:
    """Whether any path has an ancestor others cannot search (a 0700 /root)."""
    return any(
        os.path.isdir(ancestor) and not os.stat(ancestor).st_mode & 0o001
        for path in paths
        for ancestor in [str(p) for p in Path(path).parents if str(p) != "/"]
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _wait_for_spare(zygote: int, timeout: float = 10.0) -> int:
    """The pid of the zygote's spare child, once it has forked one (shortly after a load)."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in _read(f"/proc/{zygote}/task/{zygote}/children").decode().split():
            try:
                if _read(f"/proc/{pid}/comm").strip() == SPARE_NAME:
                    return int(pid)
            except OSError:
                pass
        assert time.monotonic() < deadline, "the zygote forked no spare child"
        time.sleep(0.005)


def _require_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("the zygote prepares shared namespaces on a root host only")


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor(zygote=True, restart=NO_RESTART) as supervisor:
        yield supervisor


async def test_workers_without_network_share_one_empty_netns_that_is_not_the_hosts(
    sup: Supervisor,
) -> None:
    _require_root()
    first = await sup.load(PROBE, name="first")
    second = await sup.load(PROBE, name="second")
    assert first.pid is not None
    assert second.pid is not None
    assert "netns" in first.confinement["layers"]
    shared = _ns(first.pid, "net")
    assert shared == _ns(second.pid, "net") != _ns("self", "net")
    assert sup.zygote is not None
    assert sup.zygote.pid is not None
    assert _ns(sup.zygote.pid, "net") == _ns("self", "net")  # the zygote never left the host's
    # Empty: a loopback that is down, nothing else (IFF_UP = 1).
    interfaces = _interfaces(first.pid)
    assert list(interfaces) == ["lo"]
    assert not interfaces["lo"] & 1


async def test_worker_with_network_stays_in_the_hosts_netns(sup: Supervisor) -> None:
    handle = await sup.load(
        NET_CLIENT, grant=ModulePermissions(network_access=True), validate=False
    )
    assert handle.pid is not None
    assert "netns" not in handle.confinement["layers"]
    assert _ns(handle.pid, "net") == _ns("self", "net")


async def test_workers_with_the_same_paths_share_one_masked_mount_namespace(
    sup: Supervisor,
) -> None:
    _require_root()
    first = await sup.load(PROBE, name="first")
    second = await sup.load(PROBE, name="second")
    assert first.pid is not None
    assert second.pid is not None
    assert first.policy is not None
    paths = [p.path for p in (*first.policy.read_paths, *first.policy.write_paths)]
    needs_mask = _needs_mask(paths)
    if not needs_mask:
        assert _ns(first.pid, "mnt") == _ns(second.pid, "mnt") == _ns("self", "mnt")
        return
    assert _ns(first.pid, "mnt") == _ns(second.pid, "mnt") != _ns("self", "mnt")
    # The runtime is reachable for the worker's uid through the mask: it answers.
    await first.start()
    assert await first.call("echo", value=1) == 1


async def test_the_spare_child_holds_only_stdio_and_its_socket(sup: Supervisor) -> None:
    probe = await sup.load(PROBE)
    assert sup.zygote is not None
    zygote = sup.zygote.pid
    assert zygote is not None
    spare = await anyio.to_thread.run_sync(_wait_for_spare, zygote)
    assert spare != probe.pid

    def descriptors() -> dict[int, str]:
        folder = f"/proc/{spare}/fd"
        return {int(fd): os.readlink(f"{folder}/{fd}") for fd in os.listdir(folder)}

    def waiting() -> bool:
        # Until it waits for a request, a spare rehearses a worker's start (pipes of its own).
        kinds = sorted(link.partition(":")[0] for fd, link in descriptors().items() if fd > 2)
        return kinds == ["anon_inode", "socket", "socket", "socket"]

    await until(waiting)
    fds = descriptors()
    # stdio, its socket to the zygote, and its event loop's epoll fd and self-pipe.
    assert fds[0] == "/dev/null"
    status = dict(
        line.split(":", 1) for line in _read(f"/proc/{spare}/status").decode().splitlines()
    )
    assert status["Threads"].strip() == "1"
    assert int(status["PPid"]) == zygote
    assert os.getsid(spare) == spare
    assert b"PLEXISANDBOX" not in _read(f"/proc/{spare}/environ")
