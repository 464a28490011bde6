"""Host side demo: load the example modules into confined workers and talk to them.

Run with `make demo-console` (or `.venv/bin/python examples/demo.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio

from plexisandbox import Limits, Supervisor
from plexisandbox.errors import PermissionDenied
from plexisandbox.interfaces import ModuleCapability, ModulePermissions

HERE = Path(__file__).resolve().parent / "modules"


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    async with Supervisor(limits=Limits(memory_mb=128)) as sup:
        dice = await sup.load(HERE / "dice.py", config={"seed": 7})
        await dice.start()
        print("dice  ->", await dice.call("roll", spec="2d6", timeout=2.0))
        stats = dice.stats()
        print(f"dice worker pid {stats.pid}, state {stats.state.name}, "
              f"confinement {', '.join(stats.confinement_layers) or 'none'}")
        if stats.missing_layers:
            print(f"  (degraded: missing {', '.join(stats.missing_layers)})")

        try:
            await sup.load(HERE / "my_module.py")
        except PermissionDenied as exc:
            print("MyModule refused as expected:", exc.missing)
        guide = await sup.load(
            HERE / "my_module.py",
            grant=ModulePermissions(
                capabilities=[ModuleCapability.MESSAGING], database_access=True
            ),
        )
        await guide.start()
        print("MyModule health ->", (await guide.health_check())["status"])
        print("latency p50 (ms):", dice.stats().latency_p50_ms)


if __name__ == "__main__":
    anyio.run(main)
