"""Host side: turn what `Supervisor.load()` was given into a spec the worker can import.

Resolution never imports or executes module code in the host: a path is only checked to
exist, `"pkg.mod:Class"` is located by walking sys.path, an entry point is read from package
metadata. A class object is shipped by reference when it lives in an importable file, and by
value (dill, host→worker only) when it was defined in `__main__` or inside a function.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .interfaces import BaseModule

__all__ = ["ENTRY_POINT_GROUP", "ResolvedSource", "check_name", "resolve_source"]

ENTRY_POINT_GROUP = "plexisandbox.modules"
# No dots: a dotted name would become a child logger of another module's logger.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Names that would be confused with the host itself (the source of host-emitted events).
_RESERVED = frozenset({"host", "supervisor", "plexisandbox"})


@dataclass(frozen=True)
class ResolvedSource:
    """Where the worker finds the module, and which paths it must be able to read."""

    spec: dict[str, Any]
    default_name: str
    read_paths: tuple[str, ...]
    label: str
    #: The module's source file when known (for static validation).
    file: str | None = None


def check_name(name: str) -> str:
    """A module name is used in logger names and folder names: keep it plain.

    Raises:
        ValueError: the name has characters outside [A-Za-z0-9_.-] or is too long.
    """
    if not _NAME.match(name) or name.lower() in _RESERVED:
        raise ValueError(
            f"module name {name!r} is not allowed: use 1-64 characters from A-Z a-z 0-9 _ - "
            "starting with a letter or digit, and not one of "
            f"{', '.join(sorted(_RESERVED))} (pass name= to Supervisor.load())"
        )
    return name


def _from_file(path: str, cls_name: str | None) -> ResolvedSource:
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise FileNotFoundError(f"module file {path!r} does not exist")
    stem = os.path.splitext(os.path.basename(real))[0]
    safe_stem = re.sub(r"\W", "_", stem)
    default = cls_name or safe_stem
    spec = {"kind": "file", "path": real, "stem": safe_stem, "class": cls_name}
    label = f"{path}:{cls_name}" if cls_name else path
    return ResolvedSource(spec, default, (os.path.dirname(real),), label, real)


def _find_on_path(module: str) -> tuple[str, str]:
    """(sys.path root, file) for a dotted module name, found without importing it."""
    parts = module.split(".")
    for root in sys.path:
        base = os.path.join(root or os.getcwd(), *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return os.path.realpath(root or os.getcwd()), os.path.realpath(candidate)
    raise ModuleNotFoundError(
        f"cannot find Python module {module!r} on sys.path; install it or give a .py path"
    )


def _from_import(module: str, cls_name: str | None, label: str, name: str) -> ResolvedSource:
    root, file = _find_on_path(module)
    top = os.path.join(root, module.split(".")[0])
    read = top if os.path.isdir(top) else file
    spec = {"kind": "import", "module": module, "root": root, "class": cls_name}
    return ResolvedSource(spec, name, (read,), label, file)


def _from_class(cls: type[BaseModule]) -> ResolvedSource:
    mod = sys.modules.get(cls.__module__)
    file = getattr(mod, "__file__", None)
    if cls.__module__ != "__main__" and "<locals>" not in cls.__qualname__ and file:
        parts = cls.__module__.split(".")
        root = os.path.realpath(file)
        for _ in parts if not file.endswith("__init__.py") else [*parts, None]:
            root = os.path.dirname(root)
        if os.path.isdir(os.path.join(root, *parts[:-1])):
            spec = {
                "kind": "import",
                "module": cls.__module__,
                "root": root,
                "class": cls.__qualname__,
            }
            top = os.path.join(root, parts[0])
            read = top if os.path.isdir(top) else os.path.realpath(file)
            return ResolvedSource(
                spec, cls.__name__, (read,), cls.__qualname__, os.path.realpath(file)
            )
    # Defined in __main__ or in a function: ship the class by value. The worker unpickles it
    # (host→worker data is trusted); the host never unpickles anything from a worker.
    import dill

    data = dill.dumps(cls, recurse=True)
    return ResolvedSource({"kind": "pickled", "data": data}, cls.__name__, (), cls.__qualname__)


def resolve_source(source: Any) -> ResolvedSource:
    """Accept a `.py` path (optionally `path.py:Class`), `"pkg.mod:Class"`, an entry point
    name in group `plexisandbox.modules`, or a BaseModule subclass.

    Raises:
        TypeError: an object that is none of these.
        FileNotFoundError, ModuleNotFoundError, LookupError: nothing found under that name.
    """
    if inspect.isclass(source):
        if not issubclass(source, BaseModule):
            raise TypeError(f"{source.__qualname__} is not a BaseModule subclass")
        return _from_class(source)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(
            f"cannot load a module from {type(source).__name__}; pass a .py path, "
            "'package.module:Class', an entry point name or a BaseModule subclass"
        )
    if source.endswith(".py") and os.path.isfile(source):
        return _from_file(source, None)  # a file whose path itself holds a ':'
    path, sep, cls_name = source.rpartition(":") if ":" in source else (source, "", "")
    if path.endswith(".py") or (not sep and source.endswith(".py")):
        return _from_file(path if sep else source, cls_name or None)
    if sep:
        return _from_import(path, cls_name, source, cls_name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == source:
            module, _, attr = ep.value.partition(":")
            return _from_import(module.strip(), attr.strip() or None, source, ep.name)
    raise LookupError(
        f"{source!r} is not a .py file, 'package.module:Class', or an entry point in group "
        f"{ENTRY_POINT_GROUP!r}"
    )
