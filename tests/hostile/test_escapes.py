"""Hostile suite: one escape attempt per module in `modules/`, each asserted to fail — and how.

Every test also asserts (in `arena`) that the supervisor still serves and the neighbour
module beside the attempt still answers from the same worker. Runs under asyncio and trio.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import resource
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from plexisandbox import Limits, Supervisor, _datadir
from plexisandbox._datadir import QUOTA_INTERVAL
from plexisandbox._handle import MAX_METHODS
from plexisandbox._policy import HostFacts
from plexisandbox._verify import read_status
from plexisandbox.errors import (
    ConfinementUnavailable,
    ContractViolation,
    LimitExceeded,
    ProtocolViolation,
    SandboxError,
    WorkerCrashed,
)
from plexisandbox.interfaces import BaseModule, ModuleState
from tests.conftest import EXAMPLES, ROOT, skip_or_fail, until

from .conftest import GRANT, HOSTILE, LIMITS, arena, denied, require_confinement

pytestmark = pytest.mark.anyio

# (module, errno): the attempt raised OSError with exactly this errno. EPERM is the seccomp
# filter's answer, EACCES Landlock's.
SINGLE = [
    ("memfd_fill", "EPERM"),
    ("shm_fill", "EACCES"),
    ("inet6_connect", "EPERM"),
    ("inet_highbits", "EPERM"),
    ("raw_socket", "EPERM"),
    ("packet_socket", "EPERM"),
    ("netlink_socket", "EPERM"),
    ("proc_parent_environ", "EACCES"),
    ("proc_parent_mem", "EACCES"),
    ("ptrace_parent", "EPERM"),
    ("process_vm_readv_parent", "EPERM"),
    ("kill_parent", "EPERM"),
    ("unshare_userns", "EPERM"),
    ("mount_tmpfs", "EPERM"),
    ("chroot_escape", "EPERM"),
    ("execve_sh", "EPERM"),
    ("io_uring", "EPERM"),
    ("bpf_load", "EPERM"),
    ("hardlink_escape", "EPERM"),
    ("mknod_device", "EPERM"),
    ("tty_inject", "EPERM"),
    ("listen_tcp", "EPERM"),
]

# (module, {step: errno}): several attempts in one module, each with its own answer.
STEPS = [
    ("memfd_execveat", {"memfd": "EPERM", "execveat": "EPERM"}),
    ("keyctl_keyring", {"keyctl": "EPERM", "add_key": "EPERM"}),
    (
        "kernel_admin",
        {
            "reboot": "EPERM",
            "clock_settime": "EPERM",
            "init_module": "EPERM",
            "sethostname": "EPERM",
            "perf_event_open": "EPERM",
            "userfaultfd": "EPERM",
        },
    ),
    ("sysv_shm", {"shmget": "EPERM", "msgget": "EPERM"}),
    # clone3 and pidfd_open answer ENOSYS so libc falls back to calls the filter can inspect
    ("clone_namespaces", {"clone_newpid": "EPERM", "clone3": "ENOSYS", "pidfd_open": "ENOSYS"}),
    ("ctypes_setuid", {"setuid": "EPERM", "setresuid": "EPERM"}),
    # symlink() is not in the allow-list; renaming out of the data folder is Landlock's EXDEV
    ("symlink_escape", {"symlink": "EPERM", "rename_out": "EXDEV"}),
]


@pytest.mark.parametrize(("module", "errno_name"), SINGLE, ids=[m for m, _ in SINGLE])
async def test_escape_attempt_fails_with_errno(
    tmp_path: Path, module: str, errno_name: str
) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt(module)
        denied(result, errno_name)
        if module == "fork_bomb":
            assert result["forked"] == 0


@pytest.mark.parametrize(("module", "steps"), STEPS, ids=[m for m, _ in STEPS])
async def test_escape_attempt_steps_all_fail(
    tmp_path: Path, module: str, steps: dict[str, str]
) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt(module)
        for step, errno_name in steps.items():
            denied(result[step], errno_name)


async def test_host_files_and_the_host_application_are_unreadable(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt("read_host_files", app_file=str(ROOT / "pyproject.toml"))
        for step in ("passwd", "root", "home", "app"):
            denied(result[step], "EACCES")


@pytest.mark.parametrize(
    ("dropped", "outcome"),
    [
        ((), "EPERM"),  # seccomp: clone without CLONE_THREAD
        (("seccomp",), "EAGAIN"),  # RLIMIT_NPROC, enforced because the uid is not root
    ],
    ids=["all-layers", "rlimit-only"],
)
async def test_fork_bomb_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dropped: tuple[str, ...], outcome: str
) -> None:
    _drop_layer(monkeypatch, *dropped)
    async with arena(tmp_path) as a:
        result = await a.attempt("fork_bomb")
        denied(result, outcome)
        assert result["forked"] < LIMITS.processes


@pytest.mark.parametrize(
    ("dropped", "errno_name"),
    [
        ((), "EACCES"),  # Landlock: /etc is not in the ruleset
        (("landlock", "landlock_net", "landlock_scope"), "EACCES"),  # the worker's own uid
        (("landlock", "landlock_net", "landlock_scope", "uid"), None),  # control: root reads it
    ],
    ids=["all-layers", "uid-only", "control-none"],
)
async def test_reading_etc_shadow_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dropped: tuple[str, ...],
    errno_name: str | None,
) -> None:
    if dropped and not HostFacts.detect().is_root:
        skip_or_fail("these variants compare a worker uid with root: they need a root host")
    _drop_layer(monkeypatch, *dropped)
    async with arena(tmp_path) as a:
        result = await a.attempt("read_shadow")
        if errno_name is None:
            assert result["ok"] is True
        else:
            denied(result, errno_name)


async def test_thread_bomb_stops_at_the_process_limit(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt("thread_bomb")
        assert result["error"] == "RuntimeError", result  # "can't start new thread"
        assert 0 < result["started"] < LIMITS.processes


async def test_memory_bomb_gets_memory_error_from_address_space_limit(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        # Touching ~400 MiB costs CPU time: give the 1 s CPU rlimit (the cpu_spin test's
        # subject) headroom, so that the address-space limit alone is what stops this one.
        handle = await a.load("memory_bomb", limits=dataclasses.replace(LIMITS, cpu_seconds=10))
        result = await handle.call("attempt")
        assert result["error"] == "MemoryError", result
        assert result["mib"] < LIMITS.address_space_mb


async def test_cpu_spin_is_killed_by_the_cpu_rlimit(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        with pytest.raises(LimitExceeded) as info:
            await a.attempt("cpu_spin")
        assert info.value.limit == "cpu_seconds"


async def test_fd_exhaustion_stops_at_the_open_files_limit(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        handle = await a.load("fd_exhaustion")
        result = await handle.call("attempt")
        denied(result, "EMFILE")
        assert 0 < result["opened"] < LIMITS.open_files
        # It closed them again and keeps working: exhaustion hurt only itself, briefly.
        assert (await handle.call("attempt"))["errno"] == "EMFILE"


async def test_huge_file_stops_at_the_file_size_limit(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt("huge_file")
        denied(result, "EFBIG")  # CPython ignores SIGXFSZ, so write() fails instead
        assert result["written"] == LIMITS.file_mb * 1024 * 1024


async def test_disk_fill_in_data_folder_is_killed_over_quota(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        with pytest.raises(LimitExceeded) as info:
            await a.attempt("disk_fill")
        assert info.value.limit == "data_mb"


async def test_disk_fill_while_entries_vanish_is_still_killed_over_quota(tmp_path: Path) -> None:
    # Files created and unlinked beside the fill make almost every measurement of the folder
    # meet an entry that is gone by the time it is looked at: those must not all be skipped.
    async with arena(tmp_path) as a:
        limits = dataclasses.replace(LIMITS, cpu_seconds=60)  # churning costs CPU time
        handle = await a.load("disk_fill_churn", limits=limits)
        with pytest.raises(LimitExceeded) as info:
            await handle.call("attempt")
        assert info.value.limit == "data_mb"


async def test_a_data_folder_that_cannot_be_measured_counts_as_over_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the churn above achieves most of the time, every time: each measurement fails.
    def vanished(path: str) -> int:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(_datadir, "usage", vanished)
    async with arena(tmp_path) as a:
        handle = await a.load("undecodable_name")
        await until(
            lambda: handle.state is not ModuleState.ACTIVE,
            _datadir.UNMEASURED_MAX * QUOTA_INTERVAL + 5,
        )
        error = handle.stats().last_exit
        assert error is not None
        assert error.limit == "data_mb"
        assert "unmeasurable for 8 measurements in a row" in error.reason


# Which layer answers a TCP connect to a host service without network, when the ones before
# it are switched off: seccomp refuses the socket; Landlock refuses the connect; the network
# namespace has no route (its loopback is down); with none of them (control) it connects.
INET_LAYERS = [
    ((), "EPERM"),
    (("seccomp",), "EACCES"),
    (("seccomp", "landlock_net"), "ENETUNREACH"),
    (("seccomp", "landlock_net", "netns"), None),
]


@pytest.mark.parametrize(
    ("dropped", "errno_name"),
    INET_LAYERS,
    ids=["all-layers", "landlock-net", "netns", "control-none"],
)
async def test_inet_connect_without_network_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dropped: tuple[str, ...],
    errno_name: str | None,
) -> None:
    _drop_layer(monkeypatch, *dropped)
    server = socket.create_server(("127.0.0.1", 0))
    try:
        async with arena(tmp_path) as a:
            result = await a.attempt("inet_connect", port=server.getsockname()[1])
            if errno_name is None:
                assert result == {"ok": True, "value": None}
            else:
                denied(result, errno_name)
    finally:
        server.close()


async def test_dns_without_network_fails(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt("udp_dns")
        assert result["ok"] is False
        assert result["error"] == "gaierror", result


@pytest.fixture
def host_unix_service() -> Iterator[str]:
    """A world-reachable pathname socket, like /run/postgresql/.s.PGSQL.5432 (or
    /var/run/docker.sock for a member of its group): file permissions are no obstacle."""
    folder = Path(tempfile.mkdtemp(prefix="plexisandbox-svc-", dir="/tmp"))
    folder.chmod(0o755)
    path = folder / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    path.chmod(0o777)
    try:
        yield str(path)
    finally:
        server.close()
        shutil.rmtree(folder)


@pytest.mark.parametrize("control", [False, True], ids=["all-layers", "control-no-seccomp"])
async def test_pathname_unix_socket_to_host_service_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_unix_service: str, control: bool
) -> None:
    """Landlock (before ABI 9) does not govern connecting to a pathname unix socket: only the
    seccomp rule on socket(AF_UNIX) stops it — the control run without seccomp connects."""
    if control:
        _drop_layer(monkeypatch, "seccomp")
    async with arena(tmp_path) as a:
        result = await a.attempt("unix_pathname", path=host_unix_service)
        if control:
            assert result == {"ok": True, "value": "connected"}
        else:
            denied(result, "EPERM")


# Which layer answers when the ones before it are switched off: seccomp refuses the socket;
# without it the worker's own network namespace has its own abstract namespace (nothing
# listens there); without that too, Landlock's abstract-unix scope refuses the connect; with
# none of the three (control) the attack works.
ABSTRACT_LAYERS = [
    ((), "EPERM"),
    (("seccomp",), "ECONNREFUSED"),
    (("seccomp", "netns"), "EPERM"),
    (("seccomp", "netns", "landlock_scope"), None),
]


@pytest.mark.parametrize(
    ("dropped", "errno_name"),
    ABSTRACT_LAYERS,
    ids=["all-layers", "netns", "landlock-scope", "control-none"],
)
async def test_abstract_unix_socket_to_host_service_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dropped: tuple[str, ...],
    errno_name: str | None,
) -> None:
    _drop_layer(monkeypatch, *dropped)
    name = f"plexisandbox-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0" + name)
    server.listen()
    try:
        async with arena(tmp_path) as a:
            result = await a.attempt("unix_abstract", name=name)
            if errno_name is None:
                assert result == {"ok": True, "value": "connected"}
            else:
                denied(result, errno_name)
    finally:
        server.close()


async def test_i386_int80_kills_the_worker_with_sigsys(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        with pytest.raises(WorkerCrashed) as info:
            await a.attempt("int80_i386")
        assert info.value.signal == signal.SIGSYS


async def test_x32_syscall_kills_the_worker_with_sigsys(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        with pytest.raises(WorkerCrashed) as info:
            await a.attempt("x32_syscall")
        assert info.value.signal == signal.SIGSYS


async def test_sigio_via_f_setown_never_reaches_the_supervisor(tmp_path: Path) -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGIO, lambda signum, frame: received.append(signum))
    try:
        async with arena(tmp_path) as a:
            result = await a.attempt("sigio_parent", pid=os.getpid())
            # The kernel accepts F_SETOWN and O_ASYNC; Landlock's signal scope (and the
            # distinct uid) stop the delivery itself.
            assert result["setown"]["ok"] is True
            assert result["owner"] == os.getpid()
            await anyio.sleep(0.2)
            assert received == []
    finally:
        signal.signal(signal.SIGIO, previous)


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "control-without-scope"])
async def test_sigio_is_stopped_by_landlock_scope_even_for_the_same_uid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scoped: bool
) -> None:
    """In the user-namespace path the worker keeps the host's uid, so the kernel's own SIGIO
    permission check (same uid) lets the signal through: Landlock's signal scope alone stops
    it. The control run, without the scope layer, shows the attack is real and seen here."""
    if not scoped:
        _drop_layer(monkeypatch, "landlock_scope")
    received: list[int] = []
    previous = signal.signal(signal.SIGIO, lambda signum, frame: received.append(signum))
    try:
        async with arena(tmp_path) as a:
            a.sup.host_facts = dataclasses.replace(a.sup.host_facts, is_root=False)
            handle = await a.load("sigio_parent")
            assert ("landlock_scope" in handle.confinement["layers"]) is scoped
            assert handle.pid is not None
            assert read_status(handle.pid)["Uid"].split()[0] == str(os.getuid())
            result = await handle.call("attempt", pid=os.getpid())
            assert result["setown"]["ok"] is True
            assert result["async"]["ok"] is True
            await anyio.sleep(0.2)
            assert (received == []) is scoped
    finally:
        signal.signal(signal.SIGIO, previous)


async def test_signal_to_a_sibling_worker_is_refused(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        denied(await a.attempt("signal_sibling", pid=a.neighbour_pid), "EPERM")


async def test_writes_outside_the_data_folder_are_refused(tmp_path: Path) -> None:
    targets = [
        str(ROOT / "plexisandbox-pwned"),
        "/tmp/plexisandbox-pwned",
        str(HOSTILE / "pwned.py"),
        str(tmp_path / "data" / "neighbour-file"),
        "/etc/cron.d/pwned",
    ]
    async with arena(tmp_path) as a:
        result = await a.attempt("write_outside", targets=targets)
        for target in targets:
            denied(result[target], "EACCES")
            assert not await anyio.Path(target).exists()


async def test_links_planted_for_the_supervisor_are_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    secret.chmod(0o600)
    folder = tmp_path / "data" / "planted_link"
    folder.mkdir(parents=True)
    (folder / "secret-link").symlink_to(secret)
    (folder / "root-link").symlink_to("/")
    (folder / "shadow-link").symlink_to("/etc/shadow")
    before = os.stat(secret)
    async with arena(tmp_path) as a:
        result = await a.attempt("planted_link")
        assert result["listing"] == ["root-link", "secret-link", "shadow-link"]
        denied(result["read_shadow_link"], "EACCES")  # Landlock: the target is outside
        denied(result["read_dir_link"], "EACCES")
        # The secret's own folder is not even visible: the mount mask hides the 0700 tmp dirs
        assert result["read_file_link"]["errno"] in ("ENOENT", "EACCES")
        # The supervisor chowned the folder to the worker's uid without following either
        # link: the links changed owner, their targets did not.
        after = os.stat(secret)
        assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
            before.st_uid,
            before.st_gid,
            0o600,
        )
        assert os.stat("/").st_uid == 0
        assert os.lstat(folder / "secret-link").st_uid != 0


async def test_undecodable_names_in_the_data_folder_leave_the_supervisor_running(
    tmp_path: Path,
) -> None:
    # Entry names are bytes: one that is not UTF-8 is measured (every QUOTA_INTERVAL) and
    # walked again on a restart (handed to the new worker's uid) like any other.
    async with arena(tmp_path) as a:
        handle = await a.load("undecodable_name")
        assert await handle.call("attempt") == [b"\xff\xfe"]
        await anyio.sleep(3 * QUOTA_INTERVAL)
        assert handle.state is ModuleState.ACTIVE
        await handle.restart()
        assert handle.state is ModuleState.ACTIVE
        assert handle.pid is not None
        owner = os.lstat(os.fsencode(a.data_root / "undecodable_name") + b"/\xff\xfe/f\xff")
        assert owner.st_uid == int(read_status(handle.pid)["Uid"].split()[0])


def _finally_bomb(depth: int) -> str:
    """A module whose one method nests try/finally `depth` deep: the code generator emits
    every finally body twice (the normal and the exceptional exit), so its ~1 KiB compile to
    2**depth copies of the innermost one (depth 20: ~3 GiB and ~10 s of compiling)."""
    lines = [
        f"{' ' * (i + 8)}try:\n{' ' * (i + 9)}x = {i}\n{' ' * (i + 8)}finally:"
        for i in range(depth)
    ]
    bomb = "\n".join(lines) + f"\n{' ' * (depth + 8)}y = 1\n"
    return _FINALLY_BOMB + bomb


_FINALLY_BOMB = """\
from plexisandbox.interfaces import BaseModule, ModulePermissions


class FinallyBomb(BaseModule):
    def __init__(self):
        super().__init__("finally_bomb", "1.0.0")

    async def initialize(self):
        return True

    def get_metadata(self):
        return {"description": "compile bomb", "author": "plexisandbox tests"}

    def get_required_permissions(self):
        return ModulePermissions()

    def bomb(self):
"""


async def test_a_module_file_that_compiles_to_gigabytes_is_not_compiled_by_the_host(
    tmp_path: Path,
) -> None:
    # The host compiles module files for their workers (plexisandbox._compiled), in its event
    # loop: a compile bomb must cost the confined worker, under its limits, not the host.
    folder = tmp_path / "modules"
    folder.mkdir(mode=0o755)  # readable by the worker's uid
    path = folder / "finally_bomb.py"
    path.write_text(_finally_bomb(20))
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        while True:
            before = anyio.current_time()
            await anyio.sleep(0.01)
            longest = max(longest, anyio.current_time() - before)

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    async with arena(tmp_path) as a, anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.05)  # ticking
        with pytest.raises(SandboxError):  # the worker runs out of memory compiling it
            await a.sup.load(path, grant=GRANT, limits=LIMITS, validate=False)
        tg.cancel_scope.cancel()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert longest < 1.0, f"the host's event loop stood still for {longest:.1f}s"
    assert grown_mib < 300, f"the host grew by {grown_mib:.0f} MiB"


async def test_inherited_descriptors_do_not_reach_the_worker(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    fd = os.open(secret, os.O_RDONLY)  # no O_CLOEXEC: inheritable if anyone forgot
    os.set_inheritable(fd, True)
    st = os.fstat(fd)
    try:
        async with arena(tmp_path) as a:
            found = await a.attempt("inherited_fds")
            assert [st.st_dev, st.st_ino] not in [f[1:] for f in found]
            assert len(found) <= 12, found  # stdio, the channel, asyncio's own
    finally:
        os.close(fd)


async def test_host_environment_secrets_do_not_reach_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLEXISANDBOX_TEST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    async with arena(tmp_path) as a:
        env = await a.attempt("env_secrets")
        assert set(env) <= {"PATH", "LANG", "LC_ALL", "HOME", "MALLOC_ARENA_MAX", "TMPDIR"}
        assert "hunter2" not in env.values()
        assert "hunter3" not in env.values()


async def test_a_class_graph_does_not_hang_the_hosts_validation(tmp_path: Path) -> None:
    """load() validates the module's source in a host thread. It walked every path of the
    class graph: 60 classes, each naming the two before it as bases (Python imports them at
    once), kept a host thread busy for ever and load() waiting on it."""
    async with arena(tmp_path) as a:
        with anyio.fail_after(30):
            handle = await a.load("class_graph_bomb", validate=True)
        assert handle.validation["is_valid"] is True
        assert handle.validation["class"] == "C59"
        assert await handle.call("attempt") == 60 + len(BaseModule.__mro__)  # C59 … C0


def _rss_mib() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20


async def test_a_large_module_file_does_not_fill_the_hosts_memory(tmp_path: Path) -> None:
    """load() parses the module's source in the host (validation) and keeps the facts: a
    tree of Python objects up to ~750 bytes per byte of source. A 1 MiB file of `f()` lines
    (its worker compiles it in a second) took ~1 GB to parse and left ~700 MB in the host."""
    (tmp_path / "modules").mkdir(mode=0o755)
    module = tmp_path / "modules" / "many_calls.py"
    module.write_text(
        (HOSTILE / "deep_annotation.py").read_text().split("    def get_available_methods")[0]
        + "\n\ndef f():\n    pass\n\n\n"
        + "f()\n" * (1 << 18)
    )
    async with arena(tmp_path) as a:
        before = _rss_mib()
        with pytest.raises(ContractViolation) as info:
            await a.sup.load(module, name="many_calls", grant=GRANT, limits=Limits(), validate=True)
        assert "the validator reads at most" in str(info.value.report["violations"])
        assert _rss_mib() - before < 100


async def test_a_flood_of_method_names_does_not_fill_the_hosts_memory(tmp_path: Path) -> None:
    """The READY description is module output: a million method names (~7 MiB, within a
    frame's limits) made validation build two million report items in the host — ~1.3 GB
    and 6 s — and the refused module's ~800 MB report stayed in the report cache. The host
    refuses a description naming more than MAX_METHODS before validating it."""
    async with arena(tmp_path) as a:
        before = _rss_mib()
        with pytest.raises(ProtocolViolation, match=f"more than {MAX_METHODS} API methods"):
            await a.load("method_flood", validate=True)
        assert "method_flood" not in a.sup.modules
        assert _rss_mib() - before < 150


async def test_a_deeply_nested_annotation_is_a_contract_violation(tmp_path: Path) -> None:
    """An annotation nested deeper than the host's recursion limit (the worker compiles it)
    raised RecursionError out of load() from the validation's ast.unparse: a caller that
    handles SandboxError saw an unexpected exception. It is a contract violation."""
    async with arena(tmp_path) as a:
        with pytest.raises(ContractViolation) as info:
            await a.load("deep_annotation", validate=True)
        rules = {item["rule"] for item in info.value.report["violations"]}
        assert rules == {"interface.syntax-error"}
        assert "deep_annotation" not in a.sup.modules


async def test_a_zygote_child_learns_nothing_of_its_siblings(tmp_path: Path) -> None:
    """A worker forked by the zygote keeps the zygote's stack, and on it the zygote's
    tables: every sibling worker's pid and every module's Landlock paths (module folders,
    data folders and so the modules' names)."""
    require_confinement()
    data_root = tmp_path / "data"
    async with Supervisor(zygote=True, data_root=data_root) as sup:
        neighbour = await sup.load(
            HOSTILE / "disk_fill.py",
            name="neighbour_with_data",
            grant=GRANT,
            limits=LIMITS,
            validate=False,
        )
        await neighbour.start()
        hostile = await sup.load(
            HOSTILE / "zygote_siblings.py", grant=GRANT, limits=LIMITS, validate=False
        )
        await hostile.start()
        seen = await hostile.call("attempt")
        assert neighbour.pid not in seen["pids"]
        assert not [p for p in seen["paths"] if "neighbour_with_data" in p]
        assert (await neighbour.health_check()) is not None


async def test_raising_rlimits_is_refused(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt("raise_rlimit")
        # CPython reports EPERM from setrlimit as ValueError("not allowed to raise ...")
        assert result["setrlimit"]["error"] == "ValueError"
        assert result["cpu"]["error"] == "ValueError"
        denied(result["prlimit64"], "EPERM")
        assert result["after"] == result["limits"] == [LIMITS.open_files] * 2


async def test_raising_rlimits_is_refused_by_the_kernel_without_seccomp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rlimit layer alone holds: the worker is not root, so the kernel refuses too."""
    _drop_layer(monkeypatch, "seccomp")
    async with arena(tmp_path) as a:
        handle = await a.load("raise_rlimit")
        assert "seccomp" not in handle.confinement["layers"]
        result = await handle.call("attempt")
        assert result["uid"] != 0
        assert result["setrlimit"]["error"] == "ValueError"
        denied(result["prlimit64"], "EPERM")
        assert result["after"] == [LIMITS.open_files] * 2


async def test_personality_can_only_be_queried(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        result = await a.attempt("personality_exec")
        denied(result["set"], "EPERM")
        assert result["query"] == {"ok": True, "value": 0}


def _drop_layer(monkeypatch: pytest.MonkeyPatch, *layers: str) -> None:
    """Derive policies without these layers, to test the others alone."""
    import plexisandbox._handle as handle_module

    original = handle_module.derive_policy

    def without(*args: Any, **kwargs: Any) -> Any:
        policy = original(*args, **kwargs)
        return dataclasses.replace(
            policy, layers=tuple(x for x in policy.layers if x not in layers)
        )

    monkeypatch.setattr(handle_module, "derive_policy", without)


class _RootLease:
    uid = 0

    def release(self) -> None:
        pass


class _RootAllocator:
    def acquire(self) -> _RootLease:
        return _RootLease()


async def test_host_does_not_take_the_workers_word_for_its_uid(tmp_path: Path) -> None:
    """A worker "dropped" to uid 0 keeps its capabilities; /proc shows it, strict refuses."""
    async with arena(tmp_path) as a:
        a.sup._uids = _RootAllocator()  # type: ignore[assignment]
        with pytest.raises(ConfinementUnavailable) as info:
            await a.load("env_secrets")
        assert info.value.layer == "uid"
        assert "CapEff" in info.value.detail


async def test_best_effort_reports_the_missing_layer(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        a.sup._uids = _RootAllocator()  # type: ignore[assignment]
        handle = await a.load("env_secrets", strict=False)
        assert "uid" in handle.stats().missing_layers
        assert "uid" not in handle.confinement["layers"]
        assert "seccomp" in handle.confinement["layers"]


async def test_user_namespace_path_confines_a_non_root_host(tmp_path: Path) -> None:
    """The non-root code path (user namespace instead of a uid), exercised here by telling
    policy derivation the host is not root: /proc confirms every layer all the same."""
    async with arena(tmp_path) as a:
        a.sup.host_facts = dataclasses.replace(a.sup.host_facts, is_root=False)
        handle = await a.load("ctypes_setuid")
        assert "userns" in handle.confinement["layers"]
        assert "uid" not in handle.confinement["layers"]
        result = await handle.call("attempt")
        denied(result["setuid"], "EPERM")
        assert handle.pid is not None
        status = read_status(handle.pid)
        assert int(status["CapEff"], 16) == 0
        assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
        assert os.readlink(f"/proc/{handle.pid}/ns/user") != os.readlink("/proc/self/ns/user")


async def test_every_worker_runs_under_its_own_unprivileged_uid(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        if "uid" not in a.neighbour.confinement["layers"]:
            skip_or_fail("host is not root: workers get a user namespace instead")
        other = await a.load("env_secrets")
        uids = set()
        for handle in (a.neighbour, other):
            assert handle.pid is not None
            status = read_status(handle.pid)
            assert len(set(status["Uid"].split())) == 1
            uids.add(int(status["Uid"].split()[0]))
        assert len(uids) == 2
        assert 0 not in uids


async def test_a_module_whose_folder_holds_the_data_root_is_refused_on_a_non_root_host(
    tmp_path: Path,
) -> None:
    """On a non-root host every worker runs as the host's own user, so only Landlock keeps
    one module out of another's data folder; a module reads its own folder, and a module
    file lying in the folder that holds the data root (straight in /tmp, say) could read
    them all. Strict mode refuses it; a root host gives each worker its own uid instead."""
    module = tmp_path / "reader.py"
    module.write_text((EXAMPLES / "echo.py").read_text())
    async with Supervisor(data_root=tmp_path / "data") as sup:
        sup.host_facts = dataclasses.replace(sup.host_facts, is_root=False)
        with pytest.raises(ConfinementUnavailable, match="holds the data root") as info:
            await sup.load(module, name="reader")
        assert info.value.layer == "landlock"
        assert "reader" not in sup.modules
        outside = tmp_path / "modules"
        outside.mkdir()
        (outside / "reader.py").write_text(module.read_text())
        handle = await sup.load(outside / "reader.py", name="reader")
        await handle.start()
        assert await handle.call("echo", value=1) == 1
