"""The chat server treats its users as untrusted too: one client cannot flood a room."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from examples.chat_server.config import ServerConfig
from examples.chat_server.server import ChatServer, Client
from plexisandbox import Supervisor

pytestmark = pytest.mark.anyio


async def test_one_client_flooding_a_room_is_paced_not_fanned_out_at_once(
    tmp_path: Path,
) -> None:
    # Every frame a client sends fans out to each member of the room (and to the modules):
    # a client sending as fast as its socket allows must be slowed to the configured rate.
    config = ServerConfig(data_root=tmp_path, client_rate=20.0, client_burst=5)
    chat = ChatServer(config)
    async with Supervisor() as sup:
        await chat.start(sup)
        flood_send, flood_receive = anyio.create_memory_object_stream[dict[str, Any]](500)
        room_send, room_receive = anyio.create_memory_object_stream[dict[str, Any]](500)
        flooder, member = Client(flood_send), Client(room_send)
        chat.connect(flooder)
        chat.connect(member)
        await chat.handle(member, {"type": "hello", "user": "ann", "room": "general"})
        await chat.handle(flooder, {"type": "hello", "user": "mallory", "room": "general"})
        started = time.monotonic()
        for i in range(25):
            await chat.handle(flooder, {"type": "say", "text": f"spam {i}"})
        elapsed = time.monotonic() - started
        # 5 frames of burst (one spent on hello), then 20 a second: 21 frames wait ~1 s.
        assert elapsed >= 0.9, f"25 frames were fanned out in {elapsed:.3f}s"
        texts = []
        while True:
            try:
                payload = room_receive.receive_nowait()
            except anyio.WouldBlock:
                break
            if payload["type"] == "message":
                texts.append(payload["text"])
        assert texts == [f"spam {i}" for i in range(25)]  # paced, nothing lost
        await chat.unload_all()
        for stream in (flood_send, flood_receive, room_send, room_receive):
            stream.close()


def test_client_rate_comes_from_the_config_and_the_environment(tmp_path: Path) -> None:
    raw = {"server": {"client_rate": 3, "client_burst": 7}}
    config = ServerConfig.from_dict(raw, base=tmp_path, env={})
    assert (config.client_rate, config.client_burst) == (3.0, 7)
    config = ServerConfig.from_dict(raw, base=tmp_path, env={"CHAT_CLIENT_RATE": "0"})
    assert config.client_rate == 0.0


# Starlette 1.x wants `httpx2` for its TestClient and warns when it falls back to httpx.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_production_panel_data_and_metrics_need_the_admin_token(tmp_path: Path) -> None:
    # Module errors, exit reasons, missing confinement layers and the hostile module's
    # probes are the operator's; in production the port is every chat user's to reach.
    from starlette.testclient import TestClient

    from examples.chat_server.app import create_app

    token = "t" * 24
    config = ServerConfig(mode="production", admin_token=token, data_root=tmp_path)
    with TestClient(create_app(config)) as client:
        for path in ("/api/modules", "/metrics"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
            ok = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200
    config = ServerConfig(mode="development", data_root=tmp_path)
    with TestClient(create_app(config)) as client:
        assert client.get("/api/modules").status_code == 200  # the local demo stays open


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_binary_and_malformed_frames_are_answered_and_the_connection_stays(
    backend: str, tmp_path: Path
) -> None:
    # A binary frame made Starlette's receive_text() raise KeyError out of the handler: the
    # connection died with a traceback in the server's log, once per frame a client sent.
    from starlette.testclient import TestClient

    from examples.chat_server.app import create_app

    config = ServerConfig(data_root=tmp_path)
    with TestClient(create_app(config), backend=backend) as client:
        with client.websocket_connect("/ws") as ws:
            for bad in (b"\x00\x01", "[" * 100_000 + "]" * 100_000, "{not json"):
                if isinstance(bad, bytes):
                    ws.send_bytes(bad)
                else:
                    ws.send_text(bad)
                assert ws.receive_json() == {"type": "error", "text": "frames must be JSON text"}
            ws.send_json({"type": "hello", "user": "ann"})
            assert ws.receive_json()["type"] == "welcome"
