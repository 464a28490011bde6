"""derive_policy: the permission → enforcement mapping table, without processes."""

from __future__ import annotations

import json
import os

import msgpack
import pytest

from plexisandbox import Limits
from plexisandbox._policy import (
    SYSCALL_GROUPS,
    HostFacts,
    SandboxPolicy,
    derive_policy,
)
from plexisandbox.interfaces import ModuleCapability, ModulePermissions

ROOT_HOST = HostFacts(
    runtime_paths=("/opt/python", "/srv/app"),
    is_root=True,
    landlock_abi=7,
    seccomp=True,
    userns=True,
)
USER_HOST = HostFacts(runtime_paths=("/opt/python",), is_root=False, landlock_abi=7, seccomp=True)
NETWORK = [
    ModulePermissions(network_access=True),
    ModulePermissions(external_api_access=True),
    ModulePermissions(capabilities=[ModuleCapability.NETWORK_ACCESS]),
    ModulePermissions(capabilities=[ModuleCapability.EXTERNAL_API]),
]
FILES = [
    ModulePermissions(file_system_access=True),
    ModulePermissions(capabilities=[ModuleCapability.FILE_SYSTEM_ACCESS]),
    ModulePermissions(capabilities=[ModuleCapability.FILE_HANDLING]),
    ModulePermissions(capabilities=[ModuleCapability.BACKUP_STORAGE]),
]
BROKERED = [
    ModulePermissions(database_access=True),
    ModulePermissions(capabilities=[ModuleCapability.DATABASE_ACCESS]),
    ModulePermissions(user_data_access=True),
    ModulePermissions(admin_access=True),
    ModulePermissions(system_config_access=True),
    ModulePermissions(capabilities=[ModuleCapability.MESSAGING, ModuleCapability.ADMIN_PANEL]),
]


def derive(declared: ModulePermissions, host: HostFacts = ROOT_HOST, **kw: object) -> SandboxPolicy:
    kw.setdefault("module", "m")
    kw.setdefault("module_paths", ("/srv/modules",))
    kw.setdefault("data_dir", "/var/lib/plexi/m")
    return derive_policy(declared, kw.pop("limits", Limits()), host, **kw)  # type: ignore[arg-type]


def allowed(policy: SandboxPolicy) -> set[str]:
    return {s.name for s in policy.syscalls if s.action == "allow"}


def test_equal_inputs_give_equal_and_hashable_policies() -> None:
    a = derive(ModulePermissions(network_access=True))
    b = derive(ModulePermissions(network_access=True))
    assert a == b
    assert hash(a) == hash(b)
    assert a.to_wire() == b.to_wire()


def test_baseline_confines_everything() -> None:
    policy = derive(ModulePermissions())
    assert policy.layers == (
        "rlimits",
        "uid",
        "netns",
        "no_new_privs",
        "landlock",
        "landlock_net",
        "landlock_scope",
        "seccomp",
    )
    assert policy.strict
    assert policy.data_dir is None
    assert policy.tcp == "deny"
    assert [p.path for p in policy.write_paths] == ["/dev/null"]
    assert "TMPDIR" not in dict(policy.env)
    assert not policy.prewarm
    assert not {"socket", "connect", "bind", "listen", "mkdir", "unlink"} & allowed(policy)


def test_non_root_host_uses_a_user_namespace() -> None:
    policy = derive(ModulePermissions(), USER_HOST)
    assert "userns" in policy.layers
    assert "uid" not in policy.layers


@pytest.mark.parametrize("declared", NETWORK, ids=lambda p: sorted(p.names())[0])
def test_network_names_lift_the_netns_and_allow_inet_sockets(declared: ModulePermissions) -> None:
    policy = derive(declared)
    assert policy.network
    assert "netns" not in policy.layers
    assert policy.tcp == "connect"
    assert policy.prewarm == ("dns", "tls")
    assert "/etc/resolv.conf" in [p.path for p in policy.read_paths]
    sockets = [s for s in policy.syscalls if s.name == "socket"]
    families = {s.args[0][2] for s in sockets}
    assert families == {2, 10}  # AF_INET, AF_INET6 only; never AF_UNIX, AF_PACKET, netlink
    for rule in sockets:
        assert rule.args[0][1] == 0xFFFFFFFF  # masked: AF_INET | 1 << 32 cannot slip through
        assert rule.args[1] in ((1, 0xF, 1), (1, 0xF, 2))  # stream or datagram, never raw
    assert sorted(declared.names())[0] in policy.explain()


@pytest.mark.parametrize("declared", FILES, ids=lambda p: sorted(p.names())[0])
def test_file_names_give_a_private_capped_data_folder(declared: ModulePermissions) -> None:
    limits = Limits(data_mb=16, file_mb=64)
    policy = derive(declared, limits=limits)
    assert policy.data_dir == "/var/lib/plexi/m"
    assert [p.path for p in policy.write_paths] == ["/dev/null", "/var/lib/plexi/m"]
    assert dict(policy.env)["TMPDIR"] == "/var/lib/plexi/m"
    assert policy.data_bytes == 16 * 1024 * 1024
    fsize = next(r for r in policy.rlimits if r.resource == "FSIZE")
    assert fsize.hard == 16 * 1024 * 1024  # one file can never exceed the folder's cap
    assert set(SYSCALL_GROUPS["file-write"]) <= allowed(policy)
    assert not {"symlink", "symlinkat", "link", "linkat", "mknod", "mknodat"} & allowed(policy)
    assert "netns" in policy.layers


@pytest.mark.parametrize("declared", BROKERED, ids=lambda p: "+".join(sorted(p.names())))
def test_brokered_permissions_never_become_kernel_privileges(declared: ModulePermissions) -> None:
    policy = derive(declared)
    assert policy == derive(ModulePermissions())  # the probe worker can be kept
    assert set(policy.brokered) == set(declared.names())
    assert "never kernel privileges" in policy.explain()


def test_limits_map_to_rlimits() -> None:
    limits = Limits(open_files=99, address_space_mb=700, cpu_seconds=12, processes=17, file_mb=5)
    rl = {r.resource: r for r in derive(ModulePermissions(), limits=limits).rlimits}
    assert (rl["CORE"].soft, rl["CORE"].hard) == (0, 0)
    assert (rl["NOFILE"].soft, rl["NOFILE"].hard) == (99, 99)
    assert rl["AS"].hard == 700 * 1024 * 1024
    assert (rl["CPU"].soft, rl["CPU"].hard) == (12, 13)  # soft < hard: SIGXCPU first
    assert rl["NPROC"].hard == 17
    assert rl["FSIZE"].hard == 5 * 1024 * 1024
    assert all(r.reason for r in rl.values())


NEVER = (
    "execve execveat memfd_create io_uring_setup io_uring_enter io_uring_register bpf ptrace "
    "process_vm_readv process_vm_writev keyctl add_key request_key mount umount2 unshare setns "
    "pivot_root chroot init_module finit_module delete_module reboot kexec_load swapon "
    "clock_settime settimeofday perf_event_open userfaultfd setrlimit setuid setgid setresuid "
    "capset fork vfork kcmp pidfd_getfd name_to_handle_at open_by_handle_at shmget msgget "
    "mq_open fanotify_init process_madvise socket bind listen accept4 landlock_create_ruleset "
    "seccomp move_mount fsopen open_tree quotactl acct"
).split()


@pytest.mark.parametrize("declared", [ModulePermissions(), *NETWORK[:1], *FILES[:1]])
def test_dangerous_syscalls_are_never_unconditionally_allowed(
    declared: ModulePermissions,
) -> None:
    policy = derive(declared)
    unconditional = {s.name for s in policy.syscalls if s.action == "allow" and not s.args}
    assert not set(NEVER) & unconditional


def test_argument_rules() -> None:
    rules = {(s.name, s.action): s for s in derive(ModulePermissions()).syscalls}
    clone = rules[("clone", "allow")]
    (index, mask, value) = clone.args[0]
    assert index == 0
    assert value == 0x10000
    assert mask & 0x10000
    assert mask & 0x10000000
    assert mask & 0x40000000
    assert rules[("clone3", "errno:ENOSYS")]
    assert rules[("pidfd_open", "errno:ENOSYS")]
    assert rules[("socketpair", "allow")].args == ((0, 0xFFFFFFFF, 1),)
    assert rules[("kill", "allow")].args == ((0, 0xFFFFFFFF, "self"),)
    assert rules[("prlimit64", "allow")].args == ((2, 0xFFFFFFFFFFFFFFFF, 0),)
    personalities = {
        s.args[0][2] for s in derive(ModulePermissions()).syscalls if s.name == "personality"
    }
    assert personalities == {0, 0xFFFFFFFF}


def test_landlock_reads_runtime_and_module_folder_only() -> None:
    policy = derive(ModulePermissions())
    reads = [p.path for p in policy.read_paths]
    assert reads[:3] == ["/opt/python", "/srv/app", "/srv/modules"]
    assert not [p for p in reads if p.startswith(("/proc", "/sys", "/home", "/root", "/tmp"))]
    assert "/etc/shadow" not in reads
    assert "/etc" not in reads


def test_explain_names_the_cause_of_every_rule() -> None:
    text = derive(ModulePermissions(network_access=True, file_system_access=True)).explain()
    assert "declared network_access" in text
    assert "declared file_system_access" in text
    assert "Limits.open_files" in text
    assert "always: the Python runtime" in text
    assert "EPERM" in text


def test_to_json_and_to_wire_are_plain_data() -> None:
    policy = derive(ModulePermissions(network_access=True, file_system_access=True))
    data = policy.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["landlock"]["tcp"]["mode"] == "connect"
    assert all(rule["reason"] for rule in data["seccomp"]["rules"])
    wire = policy.to_wire()
    assert msgpack.unpackb(msgpack.packb(wire)) == wire


def test_host_facts_detect_uses_real_paths() -> None:
    facts = HostFacts.detect()
    assert facts.runtime_paths
    for path in facts.runtime_paths:
        assert os.path.realpath(path) == path
    assert HostFacts.detect() is facts


def test_uid_leases_are_unique_across_allocators_until_released(tmp_path: object) -> None:
    from plexisandbox import _uids

    first, second = _uids.UidAllocator(str(tmp_path)), _uids.UidAllocator(str(tmp_path))
    start = _uids._cursor[0]
    lease = first.acquire()
    _uids._cursor[0] = start  # the other allocator tries the same uid: the lock decides
    other = second.acquire()
    assert other.uid != lease.uid
    lease.release()
    _uids._cursor[0] = start
    again = second.acquire()
    assert again.uid == lease.uid
    again.release()
    other.release()


def test_uids_are_not_reused_right_away() -> None:
    from plexisandbox._uids import UidAllocator

    a, b = UidAllocator(), UidAllocator()
    first = a.acquire()
    first.release()
    second = b.acquire()  # a fresh allocator continues the round, it does not restart it
    second.release()
    assert second.uid != first.uid


def test_verify_does_not_take_the_workers_word() -> None:
    """This (unconfined) test process claims every layer; /proc contradicts four of them."""
    from plexisandbox._verify import verify_confinement
    from plexisandbox.errors import ConfinementUnavailable

    policy = derive(ModulePermissions())
    claim = {"layers": ["env", *policy.layers], "missing": {}}
    with pytest.raises(ConfinementUnavailable) as info:
        verify_confinement(os.getpid(), policy, dict(claim), uid=1_610_000_123)
    assert info.value.layer == "uid"
    lenient = derive(ModulePermissions(), strict=False)
    report = dict(claim)
    active = verify_confinement(os.getpid(), lenient, report, uid=1_610_000_123)
    assert set(report["missing"]) == {"uid", "netns", "no_new_privs", "seccomp"}
    assert all(v.startswith("host check failed") for v in report["missing"].values())
    # Landlock leaves no trace in /proc: the report is all there is (docs/security.md).
    assert active == ["env", "rlimits", "landlock", "landlock_net", "landlock_scope"]


def test_verify_fails_closed_on_unreadable_namespaces_and_kept_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A namespace link /proc will not show counts against the claim, as does a worker that
    kept supplementary groups (a group could open what the uid alone cannot)."""
    from plexisandbox import _verify

    policy = derive(ModulePermissions(), strict=False)
    uid = 1_610_000_123
    status = {
        "Uid": f"{uid}\t{uid}\t{uid}\t{uid}",
        "Gid": f"{uid}\t{uid}\t{uid}\t{uid}",
        "Groups": "",
        "CapEff": "0000000000000000",
        "CapPrm": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",
    }
    monkeypatch.setattr(_verify, "read_status", lambda pid: dict(status))
    real_ns = _verify._ns
    monkeypatch.setattr(
        _verify, "_ns", lambda pid, kind: None if pid == 4242 else real_ns(pid, kind)
    )
    claim = {"layers": ["env", *policy.layers], "missing": {}}
    report = dict(claim)
    _verify.verify_confinement(4242, policy, report, uid=uid)
    assert set(report["missing"]) == {"netns"}
    status["Groups"] = "27 108"
    report = dict(claim)
    _verify.verify_confinement(4242, policy, report, uid=uid)
    assert set(report["missing"]) == {"netns", "uid"}
    assert "supplementary groups" in report["missing"]["uid"]
