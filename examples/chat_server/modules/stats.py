"""Chat statistics: counts messages per user and room, persisted in its private data folder.

It declares FILE_SYSTEM_ACCESS, so the supervisor gives it a private writable folder (kept
across restarts) and nothing else of the host's filesystem. The counts are written through
on every message (write a temporary file, then rename it into place), so a worker that is
killed — by the operator's restart button or by the watchdog — loses nothing.
"""

import json
import os
import tempfile
import time
from typing import Any

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions

_FILE = "stats.json"
#: Users counted at most: a client cycling through names must not grow the counts (and the
#: file rewritten on every message) without end. Past it, the least active tenth goes.
MAX_USERS = 10_000


def data_folder() -> str | None:
    """The private data folder the supervisor gave this worker, if any.

    The runtime exposes it as $HOME (and $TMPDIR); `/nonexistent` means none was given.
    """
    for var in ("PLEXISANDBOX_DATA_DIR", "HOME", "TMPDIR"):
        path = os.environ.get(var)
        if path and path != "/nonexistent" and os.path.isdir(path):
            return path
    return None


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class ChatStats(BaseModule):
    """Counts chat messages per user and per room; `summary()` answers `/stats`."""

    def __init__(self, name: str = "stats", version: str = "1.0.0"):
        super().__init__(name, version)
        self.counts: dict[str, Any] = {"total": 0, "users": {}, "rooms": {}, "since": time.time()}
        self.folder: str | None = None
        self.loaded_from_disk = 0
        self.register_event_handler("chat.message", self.on_message)

    async def initialize(self) -> bool:
        """Find the data folder and read the counts saved by a previous worker."""
        self.folder = data_folder()
        if self.folder is None:
            self.logger.warning("no private data folder: counts will not survive a restart")
            return True
        try:
            saved = _read_json(os.path.join(self.folder, _FILE))
        except FileNotFoundError:
            return True
        except (OSError, ValueError) as exc:
            self.logger.error("could not read saved counts (%s); starting from zero", exc)
            return True
        if isinstance(saved, dict) and isinstance(saved.get("total"), int):
            self.counts.update(saved)
            self.loaded_from_disk = saved["total"]
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {
            "name": self.name,
            "version": self.version,
            "author": "plexisandbox",
            "description": "Message counts per user and room, kept across restarts",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """A private data folder, nothing else."""
        return ModulePermissions(
            capabilities=[ModuleCapability.FILE_SYSTEM_ACCESS], file_system_access=True
        )

    async def on_message(self, data: Any) -> None:
        """Count one `chat.message` event and write the counts through to disk."""
        if not isinstance(data, dict):
            return
        user, room = str(data.get("user", "?"))[:64], str(data.get("room", "?"))[:64]
        self.counts["total"] += 1
        users = self.counts["users"]
        users[user] = users.get(user, 0) + 1
        if len(users) > MAX_USERS:
            keep = sorted(users.items(), key=lambda kv: -kv[1])[: MAX_USERS * 9 // 10]
            self.counts["users"] = dict(keep)
        self.counts["rooms"][room] = self.counts["rooms"].get(room, 0) + 1
        self._save()

    def _save(self) -> None:
        if self.folder is None:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".stats-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.counts, f)
            os.replace(tmp, os.path.join(self.folder, _FILE))
        except OSError as exc:
            self.logger.error("could not save counts: %s", exc)

    async def summary(self, room: str | None = None) -> dict[str, Any]:
        """Totals, the room's count and the five most talkative users."""
        users = sorted(self.counts["users"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        return {
            "total": self.counts["total"],
            "room": room,
            "room_total": self.counts["rooms"].get(room, 0) if room else None,
            "top": [{"user": u, "messages": n} for u, n in users],
            "persisted": self.folder is not None,
            "loaded_from_disk": self.loaded_from_disk,
        }
