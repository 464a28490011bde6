"""Host side: the seed's nine states and the legal moves between them."""

from __future__ import annotations

from .errors import IllegalTransition
from .interfaces import ModuleState as S

__all__ = ["ALLOWED_FROM", "check_transition"]

#: The states each public operation may start from.
ALLOWED_FROM: dict[str, frozenset[S]] = {
    "start": frozenset({S.LOADED}),
    "stop": frozenset({S.ACTIVE, S.PAUSED}),
    "pause": frozenset({S.ACTIVE}),
    "resume": frozenset({S.PAUSED}),
    "call": frozenset({S.ACTIVE}),
    "health_check": frozenset({S.LOADED, S.INITIALIZING, S.ACTIVE, S.PAUSED}),
    "reconfigure": frozenset({S.LOADED, S.ACTIVE, S.PAUSED}),
    "shutdown": frozenset(
        {S.LOADED, S.INITIALIZING, S.ACTIVE, S.PAUSED, S.ERROR, S.FAILED, S.LOADING}
    ),
    "restart": frozenset({S.LOADED, S.ACTIVE, S.PAUSED, S.ERROR, S.FAILED}),
}


def check_transition(module: str, operation: str, state: S) -> None:
    """Raise `IllegalTransition` unless `operation` is allowed from `state`."""
    allowed = ALLOWED_FROM[operation]
    if state not in allowed:
        names = ", ".join(sorted(s.name for s in allowed))
        raise IllegalTransition(module=module, operation=operation, state=state.name, allowed=names)
