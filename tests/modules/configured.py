"""Test module: a configuration schema with required keys, defaults (also nested) and rules."""

from __future__ import annotations

from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions


class Configured(BaseModule):
    """The guide's schema (api_key, timeout) plus nested defaults, arrays and patterns."""

    def __init__(self) -> None:
        super().__init__("configured")
        self.applied: list[dict[str, Any]] = []

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {"description": "config schema test module"}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "api_key": {"type": "string", "minLength": 1},
                "timeout": {"type": "integer", "minimum": 1, "maximum": 300, "default": 30},
                "retry": {
                    "type": "object",
                    "properties": {
                        "attempts": {"type": "integer", "minimum": 1, "default": 3},
                        "backoff": {"type": "number", "default": 0.5},
                    },
                    "default": {},
                },
                "channels": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^#[a-z]+$"},
                },
                "mode": {"enum": ["fast", "safe"], "default": "safe"},
            },
            "required": ["api_key"],
            "additionalProperties": False,
        }

    def apply_config(self, config: dict[str, Any]) -> bool:
        self.applied.append(dict(config))
        if config.get("api_key") == "refuse-me":
            return False
        return super().apply_config(config)

    async def current(self) -> dict[str, Any]:
        return {"custom": self.get_current_config(), "applied": self.applied}


class BadSchema(BaseModule):
    """Its schema is not valid JSON Schema."""

    def __init__(self) -> None:
        super().__init__("badschema")

    async def initialize(self) -> bool:
        return True

    def get_metadata(self) -> dict[str, Any]:
        return {}

    def get_required_permissions(self) -> ModulePermissions:
        return ModulePermissions()

    def get_config_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"n": {"type": "integer", "minimum": "ten"}}}
