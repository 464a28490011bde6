"""Network permission end to end: declared and granted → resolve and connect; declared but
not granted → refused at load; not declared → PermissionError at socket()."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream

from plexisandbox import Supervisor
from plexisandbox.errors import PermissionDenied
from plexisandbox.interfaces import ModulePermissions
from tests.conftest import skip_or_fail

from .conftest import HOSTILE, arena, denied, require_confinement

pytestmark = pytest.mark.anyio


async def _serve(stream: SocketStream) -> None:
    async with stream:
        await stream.send(b"hello from the host\n")


async def test_declared_and_granted_network_resolves_and_connects(tmp_path: Path) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _serve)
        async with arena(tmp_path) as a:
            handle = await a.load("net_client", grant=ModulePermissions(network_access=True))
            assert "netns" not in handle.confinement["layers"]
            result = await handle.call("fetch", host="localhost", port=port)
            assert result == {"address": "127.0.0.1", "line": "hello from the host\n"}
            assert await handle.call("tls_trust_store") > 0
            # Network is TCP/UDP only: raw sockets stay refused.
            denied(await handle.call("raw_socket"), "EPERM")
        tg.cancel_scope.cancel()


#: Where a Debian host keeps its TLS keys (ssl-cert); looked at once, at import.
_HOST_HAS_TLS_KEYS = os.path.isdir("/etc/ssl/private")


async def test_declared_network_reads_the_trust_store_but_not_the_tls_keys(
    tmp_path: Path,
) -> None:
    """Network modules read /etc/ssl for TLS, whose private/ holds the host's keys: a host
    user in the ssl-cert group (as TLS servers run) gave them to the module. Shown on the
    non-root path, where the worker keeps the host's uid and groups and only Landlock
    stands between it and the folder."""
    if not _HOST_HAS_TLS_KEYS:
        skip_or_fail("this host has no /etc/ssl/private to protect")
    async with arena(tmp_path) as a:
        a.sup.host_facts = dataclasses.replace(a.sup.host_facts, is_root=False)
        handle = await a.load("net_client", grant=ModulePermissions(network_access=True))
        assert "userns" in handle.confinement["layers"]
        assert await handle.call("tls_trust_store") > 0
        denied(await handle.call("tls_private_keys"), "EACCES")


async def test_declared_but_not_granted_network_is_refused_at_load(tmp_path: Path) -> None:
    require_confinement()
    async with Supervisor(data_root=tmp_path) as sup:
        with pytest.raises(PermissionDenied) as info:
            await sup.load(HOSTILE / "net_client.py", grant=ModulePermissions(), validate=False)
        assert info.value.missing == ("network_access",)
        assert sup.modules == {}


async def test_undeclared_network_gets_permission_error_at_socket(tmp_path: Path) -> None:
    async with arena(tmp_path) as a:
        handle = await a.load("inet_connect")
        assert "netns" in handle.confinement["layers"]
        result = await handle.call("attempt", port=9)
        denied(result, "EPERM")
        assert result["error"] == "PermissionError"
