"""The chat server treats what a module answers as hostile input: nothing unbounded reaches
a room's history or its clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from examples.chat_server.config import ModuleSpec, ServerConfig
from examples.chat_server.server import ChatServer, Client
from plexisandbox import Supervisor

pytestmark = pytest.mark.anyio

_BIG_DICE = """
from plexisandbox.interfaces import BaseModule, ModulePermissions


class BigDice(BaseModule):
    async def initialize(self):
        return True

    def get_metadata(self):
        return {"name": "dice", "version": "1", "description": "x", "author": "x"}

    def get_required_permissions(self):
        return ModulePermissions()

    async def roll(self, spec="1d6"):
        return {"rolls": [1, 2], "bonus": 0, "total": "9" * 4_000_000}
"""


async def test_a_dice_answer_with_a_huge_total_is_refused_not_broadcast(tmp_path: Path) -> None:
    module = tmp_path / "big_dice.py"
    module.write_text(_BIG_DICE)
    config = ServerConfig(data_root=tmp_path, modules=(ModuleSpec("dice", module, validate=False),))
    chat = ChatServer(config)
    async with Supervisor() as sup:
        await chat.start(sup)
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)
        client = Client(send)
        chat.connect(client)
        await chat.hello(client, "ann", "general")
        await chat.say(client, "/roll 2d6")
        got = []
        while True:
            try:
                got.append(receive.receive_nowait())
            except anyio.WouldBlock:
                break
        assert got[-1] == {"type": "error", "text": "dice: the module answered nonsense"}
        assert all(len(json.dumps(p)) < 5000 for p in got)
        assert all(len(json.dumps(p)) < 5000 for p in chat.rooms["general"].history)
        await chat.unload_all()
        send.close()
        receive.close()


async def test_the_stats_module_keeps_a_bounded_number_of_users() -> None:
    """A client cycling through names must not grow the counts (rewritten to disk on every
    message) without end: past MAX_USERS the least active tenth is dropped."""
    from examples.chat_server.modules.stats import MAX_USERS, ChatStats

    stats = ChatStats()
    for _ in range(3):
        await stats.on_message({"user": "regular", "room": "lobby"})
    for i in range(MAX_USERS + 10):
        await stats.on_message({"user": f"name{i}", "room": "lobby"})
    assert len(stats.counts["users"]) <= MAX_USERS
    assert stats.counts["users"]["regular"] == 3
    assert stats.counts["total"] == MAX_USERS + 13
    assert (await stats.summary("lobby"))["top"][0] == {"user": "regular", "messages": 3}
