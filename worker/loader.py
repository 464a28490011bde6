"""Worker side: find and instantiate the module class named by the host's source spec.

Runs after confinement: from here on, code is untrusted. Modules written against the seed's
import path `plexichat.infrastructure.modules.interfaces` get `plexisandbox.interfaces`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import marshal
import os
import sys
import types
from typing import Any

from plexisandbox import interfaces
from plexisandbox.interfaces import BaseModule

__all__ = ["alias_seed_path", "instantiate", "load_class"]

SEED_PATH = "plexichat.infrastructure.modules.interfaces"


def alias_seed_path() -> None:
    """Make `from plexichat.infrastructure.modules.interfaces import …` give our contracts."""
    parts = SEED_PATH.split(".")
    parent: types.ModuleType | None = None
    for depth in range(1, len(parts)):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name, "alias package created by plexisandbox")
            module.__path__ = []
            sys.modules[name] = module
        if parent is not None:
            setattr(parent, parts[depth - 1], module)
        parent = module
    sys.modules[SEED_PATH] = interfaces
    assert parent is not None
    setattr(parent, parts[-1], interfaces)


def _pick_class(module: types.ModuleType, wanted: str | None, origin: str) -> type[BaseModule]:
    if wanted:
        obj: Any = module
        for part in wanted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise LookupError(f"{origin} has no class {wanted!r}")
        if not (inspect.isclass(obj) and issubclass(obj, BaseModule)):
            raise TypeError(f"{origin}:{wanted} is not a BaseModule subclass")
        return obj
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseModule)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    # A helper base defined beside the module class is not a candidate: prefer public
    # classes, and of those the most derived.
    found = [c for c in found if not c.__name__.startswith("_")] or found
    found = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookupError(
            f"{origin} defines no concrete BaseModule subclass; define one that implements "
            "initialize, get_metadata and get_required_permissions"
        )
    names = ", ".join(sorted(c.__name__ for c in found))
    raise LookupError(
        f"{origin} defines several module classes ({names}); name one as '{origin}:ClassName'"
    )


def _import_top_level(root: str, top: str) -> None:
    """Import the top-level package (or module) `top` from the folder `root` by its path.

    Confinement grants read access to the package's own folder, not to `root` (which may be
    the host's whole site-packages or checkout): a sys.path entry for `root` added now could
    not even be listed, so the package is located by path and its submodules are found
    through its `__path__`, which lies inside the readable folder.
    """
    if top in sys.modules:
        return
    package_dir = os.path.join(root, top)
    init = os.path.join(package_dir, "__init__.py")
    single = os.path.join(root, top + ".py")
    if os.path.isfile(init):
        spec = importlib.util.spec_from_file_location(
            top, init, submodule_search_locations=[package_dir]
        )
    elif os.path.isfile(single):
        spec = importlib.util.spec_from_file_location(top, single)
    elif os.path.isdir(package_dir):  # a namespace package
        spec = importlib.machinery.ModuleSpec(top, None, is_package=True)
        spec.submodule_search_locations = [package_dir]
    else:
        raise ModuleNotFoundError(f"no module named {top!r} in {root}", name=top)
    if spec is None:
        raise ImportError(f"cannot load {top!r} from {root}", name=top)
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(top, None)
        raise


def _host_compiled(source: dict[str, Any]) -> types.CodeType | None:
    """The module's code as the host compiled it from the same file (plexisandbox._compiled),
    if it came with BOOT in this interpreter's bytecode format; else None (compile here)."""
    data = source.get("code")
    if not isinstance(data, bytes) or source.get("magic") != importlib.util.MAGIC_NUMBER:
        return None
    code = marshal.loads(data)  # host → worker data: trusted, as BOOT itself
    return code if isinstance(code, types.CodeType) else None


def load_class(source: dict[str, Any]) -> type[BaseModule]:
    """Import the module's code as the host's spec describes it."""
    alias_seed_path()
    kind = source["kind"]
    if kind == "file":
        path = source["path"]
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        mod_name = "plexisandbox_module_" + source["stem"]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        code = _host_compiled(source)
        if code is not None:
            # What the loader's exec_module() does with the code it compiles itself.
            exec(code, module.__dict__)
        else:
            spec.loader.exec_module(module)
        return _pick_class(module, source.get("class"), path)
    if kind == "import":
        root = source.get("root")
        if root:
            _import_top_level(root, source["module"].partition(".")[0])
        module = importlib.import_module(source["module"])
        return _pick_class(module, source.get("class"), source["module"])
    if kind == "pickled":
        import dill  # only for classes shipped by value; host→worker data is trusted

        cls = dill.loads(source["data"])
        if not (inspect.isclass(cls) and issubclass(cls, BaseModule)):
            raise TypeError("the shipped object is not a BaseModule subclass")
        return cls
    raise ValueError(f"unknown source kind {kind!r}")


def instantiate(cls: type[BaseModule]) -> BaseModule:
    """Create the module with its own defaults (the guide's modules take name/version)."""
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise TypeError(f"{cls.__qualname__} does not implement the REQUIRED methods: {missing}")
    return cls()
