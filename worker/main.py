"""Worker side: the entry point — handshake, confinement, import, serve, in that order.

The host starts a fresh interpreter (`python -I -S -B -c BOOTSTRAP`) with the channel's fds
and its own pid on the command line; see `plexisandbox._launcher`. Until `GO` arrives, only
trusted code runs here; the module is imported only after the host has checked, from /proc,
that the confinement the policy asks for is really in force.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import sys
import traceback
from typing import Any, NoReturn

from plexisandbox._protocol import DEFAULT_MAX_FRAME, WIRE_VERSION, Op, encode
from plexisandbox.interfaces import BaseModule, ModuleState

from . import confine, hygiene
from .channel import BlockingReader, FrameWriter
from .control import start_control_thread
from .loader import instantiate, load_class
from .logrelay import install_log_relay
from .serve import Runtime

__all__ = ["EXIT_CONFINE", "EXIT_IMPORT", "EXIT_PROTOCOL", "main", "run"]

EXIT_PROTOCOL = 69
EXIT_CONFINE = 70
EXIT_IMPORT = 71


def _fatal(writer: FrameWriter, stage: str, exc: BaseException, code: int) -> NoReturn:
    text = "".join(traceback.format_exception(exc))[-16 * 1024 :]
    try:
        writer.send([Op.FATAL, stage, type(exc).__qualname__, str(exc)[:4096], text])
    finally:
        os._exit(code)


def _expect(reader: BlockingReader, writer: FrameWriter, op: Op) -> list[Any]:
    try:
        message = reader.next()
    except EOFError:
        os._exit(0)  # the supervisor gave up on us; nothing to report to
    if not isinstance(message, list) or not message or message[0] != op:
        _fatal(writer, "handshake", ValueError(f"expected {op.name}, got {message!r:.80}"), 69)
    return message


def describe(module: BaseModule) -> dict[str, Any]:
    """What the host needs to know before it lets the module run: all plain data."""
    permissions = module.get_required_permissions()
    if not hasattr(permissions, "to_dict"):
        raise TypeError(
            "get_required_permissions() must return ModulePermissions, got "
            f"{type(permissions).__qualname__}"
        )
    cls = type(module)
    signatures: dict[str, Any] = {}
    for method in module.get_available_methods():
        target = getattr(module, str(method), None)
        entry: dict[str, Any] = {"exists": target is not None, "callable": callable(target)}
        if callable(target):
            try:
                sig = inspect.signature(target)
                entry["params"] = [
                    {"name": p.name, "kind": p.kind.name, "required": p.default is p.empty}
                    for p in sig.parameters.values()
                ]
                entry["is_async"] = inspect.iscoroutinefunction(target)
            except (TypeError, ValueError):
                entry["params"] = None
        signatures[str(method)] = entry
    description = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "name": str(module.name),
        "version": str(module.version),
        "permissions": permissions.to_dict(),
        "schema": module.get_config_schema(),
        "metadata": module.get_metadata(),
        "methods": list(module.get_available_methods()),
        "api_version": str(module.get_api_version()),
        "subscriptions": sorted(module._event_handlers),
        "signatures": signatures,
    }
    encode(description)  # raises TypeError naming any value that cannot cross the boundary
    return description


def _forget_unreadable_paths() -> None:
    """Drop what the import system learnt before confinement about folders that the worker
    may no longer read: every import so far listed each sys.path folder (the host's checkout,
    /tmp, …) and cached the names, which module code could read back from
    `sys.path_importer_cache`. Folders it cannot list now leave sys.path too."""
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()

    def usable(entry: str) -> bool:
        # Opening a folder is what Landlock's READ_DIR right governs: no need to list it.
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        os.close(fd)
        return True

    sys.path[:] = [entry for entry in sys.path if entry and usable(entry)]


def main(args: list[str]) -> NoReturn:
    """A launched worker's entry point: `args` are [data in, data out, control in, host pid]."""
    fd_in, fd_out, fd_ctl, parent = (int(a) for a in args)
    # 1. Hygiene before anything is read: die with the supervisor, hold only the channel.
    hygiene.die_with_parent(parent)
    hygiene.close_inherited_fds({0, 1, 2, fd_in, fd_out, fd_ctl})
    run(fd_in, fd_out, fd_ctl)


def run(
    fd_in: int,
    fd_out: int,
    fd_ctl: int,
    *,
    prepared: confine.Prepared | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> NoReturn:
    """Handshake, confinement, import, serve — after the hygiene of step 1 (done by `main()`,
    or by the zygote's spare child before it was handed this worker's channel). `prepared`
    and `loop` are what the zygote's child made ahead: namespaces to join, and the event
    loop (its epoll fd and self-pipe; no thread)."""
    writer = FrameWriter(fd_out)
    reader = BlockingReader(fd_in)

    # 2. Versioned handshake: we speak first, the host compares and sends BOOT.
    # sys.version's first word is what platform.python_version() returns (without importing
    # platform: ~1 ms of a launched worker's start).
    python = sys.version.split()[0]
    writer.send([Op.HELLO, {"wire": WIRE_VERSION, "pid": os.getpid(), "python": python}])
    boot = _expect(reader, writer, Op.BOOT)[1]
    if boot.get("wire") != WIRE_VERSION:
        _fatal(
            writer,
            "handshake",
            ValueError(
                f"wire protocol mismatch: supervisor speaks v{boot.get('wire')}, worker speaks "
                f"v{WIRE_VERSION}. The worker runtime comes from a different plexisandbox "
                "install; reinstall plexisandbox so both sides come from the same version"
            ),
            EXIT_PROTOCOL,
        )

    # 3. Confinement, while this process is still single-threaded (threads created earlier
    #    would escape Landlock and a seccomp filter without TSYNC).
    if boot["source"].get("kind") == "pickled":
        # dill probes for a writable temporary directory when imported: do it while the
        # filesystem is still open (the class itself is unpickled after GO).
        import dill  # noqa: F401
    try:
        report = confine.apply(boot["policy"], prepared)
    except confine.ConfinementError as exc:
        _fatal(writer, "confine:" + exc.layer, exc, EXIT_CONFINE)
    except Exception as exc:
        _fatal(writer, "confine", exc, EXIT_CONFINE)
    writer.send([Op.CONFINED, report])

    # While the host checks /proc (a round trip at the least), the rest of the trusted
    # set-up: everything here runs confined already, and none of it is module code.
    _forget_unreadable_paths()
    install_log_relay(writer, int(boot.get("log_level", logging.INFO)))
    max_frame = int(boot.get("max_frame", DEFAULT_MAX_FRAME))
    runtime = Runtime(None, writer, fd_in, max_frame)  # type: ignore[arg-type]
    # The control thread (pings, stack dumps): Thread.start() waits for the new thread to
    # run, a cross-CPU wake-up that costs less here than anywhere after GO. It inherits the
    # confinement (seccomp and Landlock apply to threads created after them). Control
    # frames sent before it runs wait in the pipe.
    start_control_thread(fd_ctl, writer)

    # 4. The host verified /proc/<pid>/status; only now does untrusted code run.
    _expect(reader, writer, Op.GO)
    BaseModule._runtime = runtime  # so register_event_handler() in __init__ subscribes
    try:
        module = instantiate(load_class(boot["source"]))
        # The seed's default health_check() reports self.state: from here the module is
        # LOADED (the host's handle agrees once the config is applied).
        module.state = ModuleState.LOADED
        runtime.module = module
        description = describe(module)
    except BaseException as exc:
        _fatal(writer, "import", exc, EXIT_IMPORT)
    writer.send([Op.READY, description])

    # 5. Serve until the host closes the channel: what asyncio.run() does, on the loop made
    #    ahead if there is one.
    the_loop = loop if loop is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(the_loop)
    with asyncio.Runner(loop_factory=lambda: the_loop) as runner:
        runner.run(runtime.serve(reader.leftover()))
    os._exit(0)
