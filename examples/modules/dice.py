"""Dice: rolls dice written as `NdM` (e.g. `2d6`, `1d20+3`) — a classic chat-server module."""

import random
import re
from typing import Any

from plexisandbox.interfaces import BaseModule, ModulePermissions

_SPEC = re.compile(r"^\s*(\d{0,3})d(\d{1,4})\s*([+-]\s*\d{1,5})?\s*$", re.IGNORECASE)


class DiceModule(BaseModule):
    """Rolls dice for chat commands like `/roll 2d6`."""

    def __init__(self, name: str = "dice", version: str = "1.0.0"):
        super().__init__(name, version)
        self.rng = random.Random()

    async def initialize(self) -> bool:
        """Seed the generator from the config when one is given (reproducible games)."""
        seed = self.configuration.custom_config.get("seed")
        if seed is not None:
            self.rng.seed(seed)
        return True

    def get_metadata(self) -> dict[str, Any]:
        """Describe the module."""
        return {"name": self.name, "version": self.version,
                "description": "Rolls dice: /roll NdM[+K]", "author": "plexisandbox"}

    def get_required_permissions(self) -> ModulePermissions:
        """Dice need no permission at all."""
        return ModulePermissions()

    def get_config_schema(self) -> dict[str, Any]:
        """Optional seed and a cap on dice per roll."""
        return {
            "type": "object",
            "properties": {
                "seed": {"type": "integer"},
                "max_dice": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            },
            "additionalProperties": False,
        }

    async def roll(self, spec: str = "1d6", sides: int | None = None) -> dict[str, Any]:
        """Roll `spec` (`NdM[+K]`), or one die with `sides` sides."""
        if sides is not None:
            spec = f"1d{sides}"
        match = _SPEC.match(spec)
        if not match:
            raise ValueError(f"cannot parse dice {spec!r}; write it like 2d6 or 1d20+3")
        count = int(match.group(1) or 1)
        faces = int(match.group(2))
        bonus = int((match.group(3) or "0").replace(" ", ""))
        max_dice = self.configuration.custom_config.get("max_dice", 20)
        if not 1 <= count <= max_dice or faces < 2:
            raise ValueError(f"roll 1-{max_dice} dice of at least 2 sides, not {spec!r}")
        rolls = [self.rng.randint(1, faces) for _ in range(count)]
        return {"spec": spec.strip(), "rolls": rolls, "bonus": bonus, "total": sum(rolls) + bonus}
