"""Greeter: welcomes people who join a room, posting through the `messages.send` host service.

Posting into the chat is not something a module can do by itself: it asks the host, and the
supervisor checks on every call that the module declared (and was granted) MESSAGING.
"""

from typing import Any

from plexisandbox.interfaces import BaseModule, ModuleCapability, ModulePermissions


class Greeter(BaseModule):
    """Says hello in the room when someone joins."""

    def __init__(self, name: str = "greeter", version: str = "1.0.0"):
        super().__init__(name, version)
        self.greeted = 0
        self.register_event_handler("chat.join", self.on_join)

    async def initialize(self) -> bool:
        """Nothing to prepare."""
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {
            "name": self.name,
            "version": self.version,
            "author": "plexisandbox",
            "description": "Welcomes people joining a room (messages.send)",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Posting to rooms goes through the host's messages.send service: MESSAGING."""
        return ModulePermissions(capabilities=[ModuleCapability.MESSAGING])

    def get_config_schema(self) -> dict[str, Any]:
        """The greeting, with {user} and {room} placeholders."""
        return {
            "type": "object",
            "properties": {"greeting": {"type": "string", "maxLength": 300}},
            "additionalProperties": False,
        }

    async def on_join(self, data: Any) -> None:
        """Post the greeting into the room someone joined."""
        if not isinstance(data, dict) or "room" not in data:
            return
        template = self.configuration.custom_config.get(
            "greeting", "Welcome to #{room}, {user}! Try /roll 2d6, /stats or /help."
        )
        text = template.replace("{user}", str(data.get("user", "someone"))[:64])
        text = text.replace("{room}", str(data["room"])[:64])
        await self.host.call("messages.send", room=data["room"], text=text)
        self.greeted += 1

    async def greeted_count(self) -> int:
        """How many people this worker greeted."""
        return self.greeted
