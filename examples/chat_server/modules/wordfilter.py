"""Word filter: a message hook that passes, rewrites or rejects chat messages.

The server calls `filter(text=..., user=..., room=...)` before it delivers a message and acts
on the verdict — `{"action": "pass"}`, `{"action": "modify", "text": ...}` or
`{"action": "reject", "reason": ...}` — the hook semantics of a classic chat-server plugin.
It needs no permission at all: it sees only what the server hands it.
"""

import re
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class WordFilter(BaseModule):
    """Masks mild words (`darn` -> `d**n`) and rejects messages containing banned ones."""

    def __init__(self, name: str = "wordfilter", version: str = "1.0.0"):
        super().__init__(name, version)
        self.mask: re.Pattern[str] | None = None
        self.banned: re.Pattern[str] | None = None
        self.checked = 0
        self.rejected = 0
        self.modified = 0

    async def initialize(self) -> bool:
        """Compile the word lists from the config."""
        cfg = self.configuration.custom_config
        self.mask = _words(cfg.get("mask", []))
        self.banned = _words(cfg.get("reject", []))
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {
            "name": self.name,
            "version": self.version,
            "author": "plexisandbox",
            "description": "Masks or rejects words in chat messages (message hook)",
        }

    def get_required_permissions(self) -> ModulePermissions:
        """Filtering text needs nothing from the host."""
        return ModulePermissions()

    def get_config_schema(self) -> dict[str, Any]:
        """Two word lists: words to mask and words that reject the whole message."""
        words = {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "maxItems": 500,
        }
        return {
            "type": "object",
            "properties": {"mask": words, "reject": words},
            "additionalProperties": False,
        }

    async def filter(self, text: str, user: str = "", room: str = "") -> dict[str, Any]:
        """The verdict on one message: pass, modify (with the new text) or reject (with why)."""
        self.checked += 1
        if self.banned is not None:
            hit = self.banned.search(text)
            if hit:
                self.rejected += 1
                return {
                    "action": "reject",
                    "reason": f"the word {hit.group(0)!r} is not allowed here",
                }
        if self.mask is not None:
            masked = self.mask.sub(_stars, text)
            if masked != text:
                self.modified += 1
                return {"action": "modify", "text": masked}
        return {"action": "pass"}

    async def counters(self) -> dict[str, int]:
        """How many messages were checked, rejected and modified since start."""
        return {"checked": self.checked, "rejected": self.rejected, "modified": self.modified}


def _words(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def _stars(match: re.Match[str]) -> str:
    word = match.group(0)
    return word[0] + "*" * (len(word) - 2) + word[-1] if len(word) > 2 else "*" * len(word)
