"""The host's prebuilt seccomp program, patched with a pid, is the program libseccomp makes."""

from __future__ import annotations

import os
import random

import pytest

from plexisandbox import _bpf
from plexisandbox._limits import Limits
from plexisandbox._policy import HostFacts, derive_policy
from plexisandbox.interfaces import ModulePermissions
from tests.conftest import skip_or_fail


@pytest.fixture(autouse=True)
def _libseccomp() -> None:
    """The comparison needs libseccomp itself: skip without it, fail under MUST_CONFINE."""
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        skip_or_fail("pyseccomp (libseccomp) is not importable")


_DECLARATIONS = {
    "baseline": ModulePermissions(),
    "network": ModulePermissions(network_access=True),
    "files": ModulePermissions(file_system_access=True),
    "both": ModulePermissions(network_access=True, file_system_access=True),
}


def _rules(declared: ModulePermissions) -> list[list[object]]:
    host = HostFacts(runtime_paths=("/usr",), is_root=True, landlock_abi=7, seccomp=True)
    policy = derive_policy(declared, Limits(), host, module="m", data_dir="/tmp/zyg_data")
    return policy.to_wire()["syscalls"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", sorted(_DECLARATIONS))
def test_patched_template_equals_freshly_generated_program(kind: str) -> None:
    rules = _rules(_DECLARATIONS[kind])
    template = _bpf.template(rules)
    assert template is not None
    assert template["pid_at"], "kill/tgkill to itself compare against the pid"
    values = {int(v) for _, _, args in rules for _, _, v in args if v != "self"}
    pids = [2, 300, os.getpid(), 4_194_304, *random.Random(kind).sample(range(3, 4_194_304), 12)]
    pids += [v + d for v in values for d in (-1, 0, 1) if 0 < v + d <= 4_194_304]
    for pid in pids:
        if not _bpf.usable(template, pid):
            assert pid in values
            continue
        patched = _bpf.patch(template["bpf"], template["pid_at"], pid)
        assert patched == _bpf.compile_program(rules, pid), f"pid {pid}"


def test_a_pid_equal_to_another_rules_value_is_not_patched() -> None:
    # libseccomp merges kill(1, …) with socketpair(AF_UNIX=1, …): pid 1 would differ.
    rules = _rules(ModulePermissions())
    template = _bpf.template(rules)
    assert template is not None
    assert not _bpf.usable(template, 1)
    assert _bpf.patch(template["bpf"], template["pid_at"], 1) != _bpf.compile_program(rules, 1)
    assert _bpf.usable(template, 4242)
    assert not _bpf.usable(None, 4242)


def test_template_without_pid_rules_has_no_patch_points() -> None:
    rules = [rule for rule in _rules(ModulePermissions()) if rule[0] not in ("kill", "tgkill")]
    template = _bpf.template(rules)
    assert template is not None
    assert template["pid_at"] == []
    assert template["bpf"] == _bpf.compile_program(rules, 12345)


def test_template_is_cached_per_rule_set() -> None:
    rules = _rules(ModulePermissions())
    assert _bpf.template(rules) is _bpf.template([list(rule) for rule in rules])
    assert _bpf.template(rules) is not _bpf.template(_rules(_DECLARATIONS["network"]))


def test_template_reports_rule_count_and_unknown_names() -> None:
    rules = [*_rules(ModulePermissions()), ["no_such_syscall_here", "allow", []]]
    template = _bpf.template(rules)
    assert template is not None
    assert template["unknown"] == ["no_such_syscall_here"]
    assert template["rules"] == len(rules) - 1


def test_load_program_refuses_what_is_not_a_program() -> None:
    with pytest.raises(OSError, match="not a BPF program"):
        _bpf.load_program(b"\x00" * 7)


def test_packed_rules_build_the_filter_when_there_is_no_program() -> None:
    """BOOT carries the rules msgpack-packed beside the program; a worker that cannot use the
    program (its pid is a sentinel's, or the host had none) builds the filter from them."""
    from plexisandbox_worker import seccomp

    from plexisandbox._protocol import pack_body

    packed = pack_body(_rules(ModulePermissions()))
    pid = os.fork()
    if pid == 0:  # the filter is for good: install it in a child
        code = 1
        try:
            report = seccomp.install(packed, None)
            try:
                os.chroot("/")  # root could without the filter
                code = 2
            except PermissionError:
                code = 0 if report["rules"] > 100 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
