"""The lifecycle's legal moves, without processes: every operation from every state."""

from __future__ import annotations

import pytest

from plexisandbox._states import ALLOWED_FROM, check_transition
from plexisandbox.errors import IllegalTransition, SandboxError
from plexisandbox.interfaces import ModuleState as S

# The specification (DESIGN.md, "Lifecycle and calls"), written out independently of the code:
# start from LOADED; stop from ACTIVE or PAUSED; pause from ACTIVE; resume from PAUSED; calls
# only when ACTIVE; shutdown from anything that still has (or is getting) a worker, and from
# ERROR/FAILED; restart (operator action) from any settled state.
SPEC: dict[str, set[S]] = {
    "start": {S.LOADED},
    "stop": {S.ACTIVE, S.PAUSED},
    "pause": {S.ACTIVE},
    "resume": {S.PAUSED},
    "call": {S.ACTIVE},
    "health_check": {S.LOADED, S.INITIALIZING, S.ACTIVE, S.PAUSED},
    "reconfigure": {S.LOADED, S.ACTIVE, S.PAUSED},
    "shutdown": {S.LOADED, S.INITIALIZING, S.ACTIVE, S.PAUSED, S.ERROR, S.FAILED, S.LOADING},
    "restart": {S.LOADED, S.ACTIVE, S.PAUSED, S.ERROR, S.FAILED},
}


def test_the_table_covers_exactly_the_specified_operations() -> None:
    assert set(ALLOWED_FROM) == set(SPEC)


@pytest.mark.parametrize("operation", sorted(SPEC))
@pytest.mark.parametrize("state", list(S), ids=lambda s: s.name)
def test_operation_from_state(operation: str, state: S) -> None:
    if state in SPEC[operation]:
        check_transition("m", operation, state)
        return
    with pytest.raises(IllegalTransition) as info:
        check_transition("m", operation, state)
    err = info.value
    assert isinstance(err, SandboxError)
    assert err.module == "m"
    assert err.operation == operation
    assert err.state == state.name
    message = str(err)
    assert f"cannot {operation}() module 'm' while it is {state.name}" in message
    for allowed in SPEC[operation]:
        assert allowed.name in message


def test_no_operation_but_shutdown_and_restart_leaves_error_or_failed() -> None:
    for state in (S.ERROR, S.FAILED):
        allowed = {op for op, states in SPEC.items() if state in states}
        assert allowed == {"shutdown", "restart"}


def test_nothing_is_allowed_while_unloading_or_unloaded() -> None:
    for state in (S.UNLOADING, S.UNLOADED):
        assert not any(state in states for states in ALLOWED_FROM.values())


def test_allowed_states_are_listed_sorted_in_the_message() -> None:
    with pytest.raises(IllegalTransition, match=r"allowed from: ACTIVE, PAUSED$"):
        check_transition("m", "stop", S.LOADED)
