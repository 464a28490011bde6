"""Link preview: fetches the title of a page linked in the chat and posts it to the room.

It declares NETWORK_ACCESS (and MESSAGING to post). In the demo configuration the operator
does not grant network, so the supervisor refuses to load it and the admin panel says what is
missing; grant `network_access` in the config and it runs in a worker without a network
namespace, allowed to connect out (and nothing else).
"""

import asyncio
import html
import re
import urllib.request
from typing import Any

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions

_URL = re.compile(r"https?://[^\s<>\"']{3,200}")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class LinkPreview(BaseModule):
    """Posts `Link: <title>` for the first link in a message."""

    def __init__(self, name: str = "linkpreview", version: str = "1.0.0"):
        super().__init__(name, version)
        self.register_event_handler("chat.message", self.on_message)

    async def initialize(self) -> bool:
        """Nothing to prepare."""
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {
            "name": self.name,
            "version": self.version,
            "author": "plexisandbox",
            "description": "Posts the title of linked pages (needs network)",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Network to fetch pages, MESSAGING to post the preview."""
        return ModulePermissions(
            capabilities=[ModuleCapability.MESSAGING, ModuleCapability.NETWORK_ACCESS],
            network_access=True,
        )

    async def on_message(self, data: Any) -> None:
        """Preview the first link of a chat message."""
        if not isinstance(data, dict):
            return
        match = _URL.search(str(data.get("text", "")))
        if not match:
            return
        title = await self.title(url=match.group(0))
        if title:
            await self.host.call(
                "messages.send", room=data.get("room", "general"), text=f"Link: {title}"
            )

    async def title(self, url: str) -> str | None:
        """The page's <title>, or None when it cannot be fetched within 3 seconds."""
        try:
            return await asyncio.to_thread(_fetch_title, url)
        except OSError as exc:
            self.logger.info("no preview for %s: %s", url, exc)
            return None


def _fetch_title(url: str) -> str | None:
    request = urllib.request.Request(url, headers={"User-Agent": "plexichat-linkpreview"})
    with urllib.request.urlopen(request, timeout=3) as response:
        head = response.read(64 * 1024)
    match = _TITLE.search(head)
    if not match:
        return None
    return html.unescape(match.group(1).decode("utf-8", "replace")).strip()[:200] or None
