"""Host side: `plexisandbox bench MODULE --call METHOD` — what the sandbox adds to one method.

Two numbers for the same call, measured in the same run:

* **in-process** — `await module.call_method(METHOD, **args)` with no boundary at all. The
  module is untrusted, so this never runs in the host: it runs inside a throwaway confined
  worker. `_timing_copy()` writes a private copy of the module's folder in which the module's
  file has a subclass appended that adds one API method, `plexisandbox_bench_time`: it times
  the call in a loop inside the worker and returns the per-call seconds. The copy is loaded
  like any module (same name, grant, config and data folder), and the hook is called once. The
  worker runtime and the protocol are untouched: to the runtime the copy is just a module.
* **sandbox** — `await handle.call(METHOD, **args)` from the host, one call at a time, on the
  module loaded normally from its own source.

The overhead is the difference of the medians, and the ratio of the medians.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._bench_common import machine, percentile
from ._cli import describe_module
from ._limits import Limits
from ._sources import ResolvedSource, check_name, resolve_source
from .errors import ConfigInvalid, ModuleError, PermissionDenied, SandboxError
from .interfaces import ModulePermissions

__all__ = ["HOOK", "BenchUsageError", "bench_module", "format_module_result", "parse_call_args"]

#: The API method the timing copy adds.
HOOK = "plexisandbox_bench_time"
_TIMED_CLASS = "PlexisandboxBenchTimed"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# Appended to a copy of the module's source (file sources), or after an import of the module
# (package sources). `{base}` is the module's class. It runs inside the confined worker.
# The loop yields to the worker's event loop every 20 ms, outside the timed region, so that
# health pings are answered during a long measurement.
_HOOK_SOURCE = """

# --- appended by `plexisandbox bench` to a throwaway copy: an in-process timing hook --------
import asyncio as _plexisandbox_bench_asyncio
import time as _plexisandbox_bench_clock

from plexisandbox.interfaces import BaseModule as _PlexisandboxBenchBase


class {timed}({base}):
    async def {hook}(self, method, args, n, warmup, budget):
        clock = _plexisandbox_bench_clock.perf_counter
        call = self.call_method
        # An argument called `method` would collide with call_method's own parameter; the
        # worker takes the same path (_invoke) in that case.
        direct = "method" not in args or not hasattr(self, "_invoke")
        began = last_yield = clock()
        samples = []
        for i in range(warmup + n):
            started = clock()
            if direct:
                await call(method, **args)
            else:
                await self._invoke(method, args)
            ended = clock()
            if i >= warmup:
                samples.append(ended - started)
            if ended - last_yield > 0.02:
                await _plexisandbox_bench_asyncio.sleep(0)
                last_yield = clock()
            if samples and ended - began > budget:
                break
        return samples


if {base}.get_available_methods is not _PlexisandboxBenchBase.get_available_methods:
    def _plexisandbox_bench_methods(self):
        return [*{base}.get_available_methods(self), "{hook}"]

    {timed}.get_available_methods = _plexisandbox_bench_methods
"""


class BenchUsageError(Exception):
    """What the user must fix, as one message; `.code` is the exit status (2: usage)."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_call_args(text: str | None, *, module: str = "the module") -> dict[str, Any]:
    """`--args` (for `module`, named in errors) as keyword arguments.

    Raises:
        BenchUsageError: not JSON, or not a JSON object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BenchUsageError(
            f"--args for {module} is not valid JSON ({exc}); pass the keyword arguments as "
            "one JSON object, "
            """e.g. --args '{"value": 1}'""",
            code=2,
        ) from exc
    if not isinstance(value, dict):
        raise BenchUsageError(
            f"--args for {module} must be a JSON object of keyword arguments, got "
            f"{type(value).__name__}; "
            """e.g. --args '{"value": 1}'""",
            code=2,
        )
    return value


#: What a module folder's copy leaves out: caches and hidden entries (.git, .venv).
_IGNORED = shutil.ignore_patterns("__pycache__", ".*")
_TREE_FILES, _TREE_BYTES = 2000, 64 * 2**20


def _small_tree(folder: str) -> bool:
    """Whether `folder` (hidden entries and caches aside) is small enough to copy."""
    files = size = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in names:
            if name.startswith("."):
                continue
            files += 1
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
            if files > _TREE_FILES or size > _TREE_BYTES:
                return False
    return True


def _timing_copy(resolved: ResolvedSource, base: str, folder: Path) -> str:
    """Write the timing copy of the module into `folder`; returns its `path.py:Class` source.

    Raises:
        BenchUsageError: the source kind cannot be copied (a class object).
    """
    spec = resolved.spec
    hook = _HOOK_SOURCE.format(timed=_TIMED_CLASS, base=base, hook=HOOK)
    if spec["kind"] == "file":
        # The worker may read only the copy's folder, so the module's own folder comes along
        # when it is small (a module importing files beside it, or reading data there); the
        # module file itself keeps its name, so tracebacks and logs read like the original.
        source_dir = os.path.dirname(spec["path"])
        tree = folder / "module"
        if _small_tree(source_dir):
            shutil.copytree(source_dir, tree, symlinks=True, ignore=_IGNORED)
        else:
            tree.mkdir()
        tree.chmod(0o755)
        original = Path(spec["path"]).read_bytes()
        target = tree / os.path.basename(spec["path"])
        target.write_bytes(original + b"\n" + hook.encode())
    elif spec["kind"] == "import":
        module = spec["module"]
        head = base.split(".")[0]
        target = folder / "plexisandbox_bench_timing.py"
        target.write_text(
            f"from {module} import {head}  # importable only if installed (site-packages)\n" + hook
        )
    else:
        raise BenchUsageError(
            f"cannot time {resolved.label} in-process: give the module as a .py path, "
            "package.module:Class or an entry point name"
        )
    target.chmod(0o644)
    return f"{target}:{_TIMED_CLASS}"


def _pct_us(samples: list[float]) -> dict[str, float]:
    us = [s * 1e6 for s in samples]
    return {"p50": round(statistics.median(us), 3), "p99": round(percentile(us, 0.99), 3)}


async def _time_sandbox(
    handle: Any, method: str, args: dict[str, Any], n: int, warmup: int, budget: float
) -> list[float]:
    clock = time.perf_counter
    began = clock()
    for _ in range(warmup):
        await handle.call(method, **args)
    samples = []
    for _ in range(n):
        started = clock()
        await handle.call(method, **args)
        ended = clock()
        samples.append(ended - started)
        if ended - began > budget:
            break
    return samples


async def _grant(
    sup: Any, source: str, grant: ModulePermissions, grant_requested: bool
) -> ModulePermissions:
    if grant_requested:
        described = await describe_module(sup, source)
        grant = grant.union(ModulePermissions.from_dict(described["permissions"]))
    return grant


async def bench_module(
    source: str,
    method: str,
    args: Mapping[str, Any],
    *,
    n: int,
    budget: float,
    grant: ModulePermissions | None = None,
    grant_requested: bool = False,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    strict: bool = True,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Time `method(**args)` of the module at `source` in-process (inside a confined worker)
    and through the sandbox; at most `n` measured calls or `budget` seconds each, after a
    warm-up of a tenth of that.

    Raises:
        BenchUsageError: the module cannot be loaded, lacks the method, or the call raised;
            the message names the module and what to fix.
    """
    from ._supervisor import Supervisor

    args = dict(args)
    try:
        resolved = resolve_source(source)
        module_name = check_name(name or resolved.default_name)
    except (OSError, ImportError, LookupError, ValueError, TypeError) as exc:
        raise BenchUsageError(f"cannot benchmark {source}: {exc}") from exc
    label = resolved.label
    warmup = max(1, min(200, n // 10))
    private = tempfile.mkdtemp(prefix="plexisandbox-bench-")
    # The worker runs under its own uid: it must be able to enter the folder and read the copy.
    os.chmod(private, 0o755)
    # Both workers get the same data folder (a throwaway one unless data_root is given), the
    # same name, grant and config. The watchdog's CPU-percent limit is lifted: a timing loop is
    # busy by design and must not be mistaken for a runaway.
    limits = Limits(cpu_percent=0.0)
    data = data_root
    if data is None:
        data = os.path.join(private, "data")
        os.mkdir(data, 0o711)  # workers traverse it to their own folder, never list it
    try:
        async with Supervisor(strict=strict, data_root=data, limits=limits) as sup:
            try:
                granted = await _grant(sup, source, grant or ModulePermissions(), grant_requested)
                handle = await sup.load(source, name=module_name, grant=granted, config=config)
                await handle.start()
            except PermissionDenied as exc:
                raise BenchUsageError(
                    f"cannot benchmark {label}: {exc} (or pass --grant-requested to grant "
                    "exactly what it declares)"
                ) from exc
            except ConfigInvalid as exc:
                raise BenchUsageError(
                    f"cannot benchmark {label}: {exc} (pass its settings as JSON with "
                    "--config FILE)"
                ) from exc
            except SandboxError as exc:
                raise BenchUsageError(
                    f"cannot benchmark {label}: it failed to load: {_first_line(exc)}; fix it "
                    f"until `plexisandbox run {source}` starts it"
                ) from exc
            methods = handle.description.get("methods", [])
            if method not in methods:
                raise BenchUsageError(
                    f"module {label} has no API method {method!r}; available: "
                    f"{', '.join(methods) or 'none'} (pass one of them to --call)"
                )
            base = _class_name(resolved, str(handle.description.get("class", "")))
            layers = list(handle.stats().confinement_layers)
            try:
                sandbox = await _time_sandbox(handle, method, args, n, warmup, budget)
            except ModuleError as exc:
                raise BenchUsageError(
                    f"{label}: {method}(**{json.dumps(args)}) raised {exc.remote_type}: "
                    f"{exc.remote_message}; check that --args matches the method's parameters"
                ) from exc
            except SandboxError as exc:
                raise BenchUsageError(
                    f"{label}: calling {method}() through the sandbox failed: {_first_line(exc)}"
                ) from exc
            await sup.unload(handle.name)

            if not _DOTTED.match(base):
                raise BenchUsageError(f"module {label} reported an odd class name {base!r}")
            timing_source = _timing_copy(resolved, base, Path(private))
            try:
                timed = await sup.load(
                    timing_source, name=module_name, grant=granted, config=config, validate=False
                )
                await timed.start()
            except SandboxError as exc:
                hint = (
                    "bench copies the module's folder into a private one (only the module file "
                    f"when the folder holds more than {_TREE_FILES} files or "
                    f"{_TREE_BYTES // 2**20} MiB); a module needing files outside it cannot be "
                    "timed in-process"
                    if resolved.spec["kind"] == "file"
                    else "the package must be installed (site-packages) to be imported there"
                )
                raise BenchUsageError(
                    f"cannot time {label} in-process: its timing copy failed to load: "
                    f"{_first_line(exc)} ({hint})"
                ) from exc
            try:
                raw = await timed.call(
                    HOOK,
                    method=method,
                    args=args,
                    n=n,
                    warmup=warmup,
                    budget=budget,
                    timeout=budget * 3 + 60,
                )
            except SandboxError as exc:
                raise BenchUsageError(
                    f"cannot time {label} in-process: {_first_line(exc)} (the timing copy calls "
                    f"call_method({method!r}, ...) in a loop; does the module override "
                    "call_method() or get_available_methods() and refuse it?)"
                ) from exc
            await sup.unload(timed.name)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    # The worker's answer is data from a sandbox: check its shape before using it.
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(x, int | float) and x >= 0 for x in raw)
    ):
        raise BenchUsageError(
            f"the in-process timing of {label} returned no usable samples; does the module "
            "override call_method() and refuse unknown methods?"
        )
    in_process = [float(x) for x in raw]
    inside, outside = _pct_us(in_process), _pct_us(sandbox)
    return {
        "machine": machine(),
        "module": label,
        "method": method,
        "args": args,
        "calls": {"in_process": len(in_process), "sandbox": len(sandbox)},
        "requested_calls": n,
        "in_process_us": inside,
        "sandbox_us": outside,
        "overhead_us": round(outside["p50"] - inside["p50"], 3),
        "overhead_ratio": round(outside["p50"] / max(inside["p50"], 1e-3), 2),
        "confinement_layers": layers,
    }


def _class_name(resolved: ResolvedSource, reported: str) -> str:
    """The module class's qualified name inside its own module; the worker reports it as
    `module.qualname` (the file loader names a file's module `plexisandbox_module_<stem>`)."""
    if resolved.spec.get("class"):
        return str(resolved.spec["class"])
    spec = resolved.spec
    module = f"plexisandbox_module_{spec['stem']}" if spec["kind"] == "file" else spec.get("module")
    prefix = f"{module}."
    return reported[len(prefix) :] if reported.startswith(prefix) else reported


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def format_module_result(result: Mapping[str, Any]) -> str:
    """The human-readable report of `bench_module()`."""
    calls = result["calls"]
    lines = [
        result["machine"],
        f"module {result['module']}, {result['method']}(**{json.dumps(result['args'])})",
        f"{'':40} {'calls':>7} {'p50 µs':>10} {'p99 µs':>10}",
    ]
    for key, title in (
        ("in_process_us", "in-process (inside a confined worker)"),
        ("sandbox_us", "through the sandbox"),
    ):
        row = result[key]
        count = calls["in_process" if key == "in_process_us" else "sandbox"]
        lines.append(f"  {title:38} {count:7d} {row['p50']:10.2f} {row['p99']:10.2f}")
    if min(calls.values()) < result["requested_calls"]:
        lines.append(f"  (fewer than {result['requested_calls']} calls: time budget reached)")
    lines.append(
        f"overhead: {result['overhead_us']:+.2f} µs per call (p50), "
        f"{result['overhead_ratio']:.2f}× the in-process time"
    )
    lines.append(f"confinement: {', '.join(result['confinement_layers']) or 'none'}")
    return "\n".join(lines)
