"""Host side: the `plexisandbox` command line — run, validate, policy, bench."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ._limits import Limits
from .errors import ModuleError, SandboxError
from .interfaces import ModulePermissions

__all__ = ["main"]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def _fail(reason: str, code: int = 1) -> int:
    print(f"plexisandbox: error: {reason}", file=sys.stderr)
    return code


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _grant_from(args: argparse.Namespace) -> ModulePermissions:
    return ModulePermissions.from_names(args.grant or [])


def _add_module_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "module",
        help="a .py file, path.py:Class, package.module:Class, or an "
        "entry point in group plexisandbox.modules",
    )
    parser.add_argument(
        "--grant",
        action="append",
        metavar="PERM",
        help="grant a permission flag (network_access) or capability (MESSAGING); repeatable",
    )
    parser.add_argument(
        "--grant-requested", action="store_true", help="grant exactly what the module declares"
    )
    parser.add_argument("--name", help="module name (default: derived from MODULE)")
    parser.add_argument(
        "--best-effort",
        action="store_true",
        help="run even where a confinement layer is unavailable (degraded)",
    )


async def describe_module(sup: Any, module: str) -> dict[str, Any]:
    """`sup.describe(module)`, its deadline (a bare TimeoutError) turned into an error that
    names the module and where to look.

    Raises:
        ModuleError: the module's import did not finish within describe()'s deadline.
    """
    timeout = 20.0
    try:
        result: dict[str, Any] = await sup.describe(module, timeout=timeout)
    except TimeoutError as exc:
        raise ModuleError(
            module=module,
            remote_type="ImportTimeout",
            remote_message=f"importing and instantiating it took longer than {timeout:g}s; "
            "look for blocking work (network, sleep, a long loop) at import time or in "
            "__init__",
        ) from exc
    return result


async def _resolve_grant(args: argparse.Namespace, sup: Any) -> ModulePermissions:
    grant = _grant_from(args)
    if args.grant_requested:
        described = await describe_module(sup, args.module)
        grant = grant.union(ModulePermissions.from_dict(described["permissions"]))
    return grant


async def _run(args: argparse.Namespace) -> int:
    from ._supervisor import Supervisor

    config: dict[str, Any] = {}
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text())  # noqa: ASYNC240 - before any I/O
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read config {args.config}: {exc}", 2)
    try:
        call_args = json.loads(args.args) if args.args else {}
    except ValueError as exc:
        return _fail(f"--args is not valid JSON: {exc}", 2)
    if not isinstance(call_args, dict):
        return _fail("--args must be a JSON object of keyword arguments", 2)
    try:
        async with Supervisor(strict=not args.best_effort, data_root=args.data_root) as sup:
            grant = await _resolve_grant(args, sup)
            handle = await sup.load(args.module, config=config, grant=grant, name=args.name)
            await handle.start()
            if args.call:
                result = await handle.call(args.call, timeout=args.timeout, **call_args)
            else:
                result = {
                    "module": handle.name,
                    "state": handle.state.value,
                    "health": await handle.health_check(),
                }
            print(json.dumps(result, default=_json_default, indent=None if args.call else 2))
            await handle.shutdown()
    except SandboxError as exc:
        return _fail(_one_line(exc))
    except (OSError, ImportError, LookupError, ValueError, TypeError) as exc:
        return _fail(_one_line(exc))
    return 0


async def _policy(args: argparse.Namespace) -> int:
    from ._policy import derive_policy
    from ._sources import resolve_source
    from ._supervisor import Supervisor

    try:
        async with Supervisor(strict=not args.best_effort) as sup:
            grant = await _resolve_grant(args, sup)
            described = await describe_module(sup, args.module)
            declared = ModulePermissions.from_dict(described["permissions"])
            missing = declared.missing_from(grant)
            name = args.name or resolve_source(args.module).default_name
            policy = derive_policy(
                declared,
                Limits(),
                sup.host_facts,
                module=name,
                module_paths=resolve_source(args.module).read_paths,
                data_dir=sup.data_dir_for(name, declared),
                strict=not args.best_effort,
            )
    except SandboxError as exc:
        return _fail(_one_line(exc))
    except (OSError, ImportError, LookupError, ValueError, TypeError) as exc:
        return _fail(_one_line(exc))
    if args.json:
        print(
            json.dumps(
                {
                    "declared": declared.to_dict(),
                    "granted": grant.to_dict(),
                    "missing": missing,
                    "policy": policy.to_json(),
                },
                indent=2,
            )
        )
    else:
        print(f"module {name}: declares {', '.join(sorted(declared.names())) or 'nothing'}")
        if missing:
            print(f"NOT GRANTED (load would be refused): {', '.join(missing)}")
        print(policy.explain())
    return 1 if missing else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexisandbox", description="Run untrusted chat-server modules in confined workers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="load, start and optionally call a module")
    _add_module_options(run)
    run.add_argument("--config", help="JSON file with the module's config")
    run.add_argument("--call", metavar="METHOD", help="call this API method and print the result")
    run.add_argument("--args", metavar="JSON", help="keyword arguments for --call, as JSON")
    run.add_argument("--timeout", type=float, default=30.0, help="call deadline in seconds")
    run.add_argument("--data-root", help="folder for private data folders (file access)")

    policy = sub.add_parser("policy", help="print the sandbox policy a module would get")
    _add_module_options(policy)
    policy.add_argument("--json", action="store_true", help="machine-readable output")

    try:
        from ._cli_validate import add_parser as add_validate
    except ImportError:  # pragma: no cover - the validator ships with the package
        pass
    else:
        add_validate(sub)
    try:
        from ._bench import add_parser as add_bench
    except ImportError:  # pragma: no cover
        pass
    else:
        add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `plexisandbox` command; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "run":
        return anyio.run(_run, args)
    if args.command == "policy":
        return anyio.run(_policy, args)
    if args.command == "validate":
        from ._cli_validate import run as run_validate

        return int(run_validate(args))
    if args.command == "bench":
        from ._bench import run as run_bench

        return int(run_bench(args))
    return _fail(f"unknown command {args.command}", 2)  # pragma: no cover - argparse refuses
