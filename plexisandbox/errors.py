"""Pure core (both sides): the exception hierarchy, one base and one subclass per cause.

Every error carries its facts as attributes (`.module`, `.limit`, `.exit_code`, …) and builds
its message from them, ending with what to change. Transport failures are translated into
these once, at the edge (`raise … from exc`); cancellation is never translated.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CallTimeout",
    "ConfigInvalid",
    "ConfinementUnavailable",
    "ContractViolation",
    "IllegalTransition",
    "LimitExceeded",
    "ModuleError",
    "ModuleUnavailable",
    "PermissionDenied",
    "ProtocolViolation",
    "SandboxError",
    "ServiceError",
    "WorkerCrashed",
]


class SandboxError(Exception):
    """Base of every error plexisandbox raises; `.module` names the module when known."""

    def __init__(self, message: str, *, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


def _who(module: str | None) -> str:
    return f"module {module!r}" if module else "the module"


class ModuleError(SandboxError):
    """Module code raised: `.remote_type`, `.remote_message`, `.remote_traceback`."""

    def __init__(
        self,
        *,
        module: str | None,
        remote_type: str,
        remote_message: str,
        remote_traceback: str = "",
        method: str | None = None,
    ) -> None:
        where = f" in {method}()" if method else ""
        super().__init__(
            f"{_who(module)} raised {remote_type}{where}: {remote_message}", module=module
        )
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.method = method

    def __str__(self) -> str:
        base = super().__str__()
        if self.remote_traceback:
            return f"{base}\n--- traceback in the worker ---\n{self.remote_traceback.rstrip()}"
        return base


class CallTimeout(SandboxError):
    """A call did not finish within its deadline; the worker was told to cancel it."""

    def __init__(
        self, *, module: str | None, method: str, timeout: float, stacks: str | None = None
    ) -> None:
        super().__init__(
            f"{_who(module)} did not answer {method}() within {timeout:g}s; the call was "
            "cancelled in the worker. Raise timeout= for this call, or Limits(call_timeout=) "
            "for the module, if the work is expected to take longer",
            module=module,
        )
        self.method = method
        self.timeout = timeout
        #: The worker's Python thread stacks at the deadline (the line that hung), if captured.
        self.stacks = stacks

    def __str__(self) -> str:
        base = super().__str__()
        if self.stacks:
            return f"{base}\n--- worker stacks at the deadline ---\n{self.stacks.rstrip()}"
        return base


class WorkerCrashed(SandboxError):
    """The worker process ended while work was pending: exit code or signal, last output."""

    def __init__(
        self,
        *,
        module: str | None,
        exit_code: int | None = None,
        signal: int | None = None,
        reason: str = "",
        stderr_tail: Sequence[str] = (),
        cause: str = "crash",
        stacks: str | None = None,
    ) -> None:
        if signal is not None:
            try:
                how = f"was killed by {_signal.Signals(signal).name}"
            except ValueError:
                how = f"was killed by signal {signal}"
        elif exit_code is not None:
            how = f"exited with code {exit_code}"
        else:
            how = "stopped answering"
        msg = f"worker of {_who(module)} {how}"
        if reason:
            msg += f" ({reason})"
        if stderr_tail:
            msg += "; last output:\n  " + "\n  ".join(stderr_tail[-10:])
        super().__init__(msg, module=module)
        self.exit_code = exit_code
        self.signal = signal
        self.reason = reason
        self.stderr_tail = tuple(stderr_tail)
        self.cause = cause
        #: Python thread stacks captured before an unresponsive worker was killed.
        self.stacks = stacks


class PermissionDenied(SandboxError):
    """A module asked for what it was not granted: `.missing` lists the permissions."""

    def __init__(
        self,
        message: str,
        *,
        module: str | None,
        missing: Sequence[str] = (),
        declared: Sequence[str] = (),
    ) -> None:
        super().__init__(message, module=module)
        self.missing = tuple(missing)
        #: Everything the module declared (when known), e.g. for an admin panel.
        self.declared = tuple(declared)

    @classmethod
    def not_granted(
        cls, module: str, missing: Sequence[str], declared: Sequence[str] = ()
    ) -> PermissionDenied:
        """The module's declaration exceeds its grant."""
        flags = " ".join(f"--grant {m}" for m in missing)
        return cls(
            f"module {module!r} declares permissions it was not granted: {', '.join(missing)}. "
            f"Grant them (ModulePermissions(...) in grant=, or `{flags}` on the command line) "
            "or remove them from get_required_permissions()",
            module=module,
            missing=missing,
            declared=declared,
        )


class ConfigInvalid(SandboxError):
    """`config=` failed the module's `get_config_schema()`: `.path` and `.rule` say where."""

    def __init__(
        self, message: str, *, module: str | None, path: str = "$", rule: str = ""
    ) -> None:
        super().__init__(message, module=module)
        self.path = path
        self.rule = rule


class LimitExceeded(SandboxError):
    """A resource limit was hit: `.limit`, `.observed`, `.threshold`."""

    def __init__(
        self, *, module: str | None, limit: str, observed: Any, threshold: Any, hint: str = ""
    ) -> None:
        msg = (
            f"{_who(module)} exceeded its {limit} limit: observed {observed}, threshold {threshold}"
        )
        msg += f"; {hint}" if hint else f"; raise Limits({limit}=...) if this is expected"
        super().__init__(msg, module=module)
        self.limit = limit
        self.observed = observed
        self.threshold = threshold


class ProtocolViolation(SandboxError):
    """A worker sent bytes outside the protocol; it was killed. `.reason` says what."""

    def __init__(self, reason: str, *, module: str | None) -> None:
        super().__init__(
            f"worker of {_who(module)} violated the wire protocol and was killed: {reason}",
            module=module,
        )
        self.reason = reason


class ContractViolation(SandboxError):
    """A module fails contract validation: `.report` is the validation result."""

    def __init__(self, message: str, *, module: str | None, report: Any = None) -> None:
        super().__init__(message, module=module)
        self.report = report


class ServiceError(SandboxError):
    """Raise from a host service to send its message to the calling module.

    Inside a module, a failed host-service or module-to-module call raises this. Any other
    exception a service raises reaches the module only as "service X failed (TypeName)": the
    host's internals (messages, tracebacks) never cross into the sandbox.
    """

    def __init__(self, message: str, *, module: str | None = None) -> None:
        super().__init__(message, module=module)


class ModuleUnavailable(SandboxError):
    """The module cannot take calls in its current state (restarting, FAILED, unloaded)."""

    def __init__(self, message: str, *, module: str | None, state: str | None = None) -> None:
        super().__init__(message, module=module)
        self.state = state


class IllegalTransition(SandboxError):
    """A lifecycle operation that the current state does not allow."""

    def __init__(self, *, module: str | None, operation: str, state: str, allowed: str) -> None:
        super().__init__(
            f"cannot {operation}() {_who(module)} while it is {state.upper()}; "
            f"{operation}() is allowed from: {allowed}",
            module=module,
        )
        self.operation = operation
        self.state = state


class ConfinementUnavailable(SandboxError):
    """Strict mode: a confinement layer the policy requires is not available here."""

    def __init__(self, *, module: str | None, layer: str, detail: str) -> None:
        super().__init__(
            f"refusing to start {_who(module)}: confinement layer {layer!r} is required but "
            f"unavailable ({detail}). Use a kernel that offers it, or load with "
            "strict=False to run degraded (the handle then reports what is missing)",
            module=module,
        )
        self.layer = layer
        self.detail = detail
