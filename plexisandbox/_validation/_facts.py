"""Host side: what a module's source says, read with `ast` only — the source is never executed.

`read_facts(path)` parses the file and records the module class, its methods (signatures,
docstrings, literal return values), imports and calls with their lines. Literal values are
rebuilt by a small evaluator that understands constants, containers and `ModuleCapability.X`
and nothing else: anything computed is `UNKNOWN`, and the checks then wait for `describe()`.
"""

from __future__ import annotations

import ast
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from plexisandbox._compiled import PARSE_LOCK, FileIdentity, file_identity, identity_of

__all__ = [
    "UNKNOWN",
    "ClassFacts",
    "FuncFacts",
    "ModuleFacts",
    "file_identity",
    "literal",
    "read_facts",
    "unparse",
]

#: Largest source file the validator parses; a bigger one is reported, not read. The host
#: holds the parsed tree as Python objects, up to ~750 bytes per byte of source (a 2 MiB file
#: of `f()` lines: 1.9 GB to parse, 1.45 GB kept in the facts); at the size the host also
#: compiles (plexisandbox._compiled) that is ~200 MB to parse, one parse at a time.
MAX_SOURCE_BYTES = 256 * 1024
_MAX_DEPTH = 40
#: Inherited methods and attributes the class merge copies for one file, at most.
_MAX_MERGED = 1_000_000


class _Unknown:
    """A value the source computes (not a literal): the static pass cannot know it."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass
class FuncFacts:
    """One method as written: `def` or `async def`, parameters, docstring, returns."""

    name: str
    line: int
    is_async: bool
    node: ast.FunctionDef | ast.AsyncFunctionDef
    docstring: str | None
    owner: str

    @property
    def returns(self) -> list[ast.Return]:
        """Return statements of this function itself (not of nested functions or classes)."""
        found: list[ast.Return] = []
        stack: list[ast.AST] = list(self.node.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Return):
                found.append(node)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
                continue
            stack.extend(ast.iter_child_nodes(node))
        return sorted(found, key=lambda n: n.lineno)

    def literal_return(self) -> Any:
        """The value of the function's only `return`, when it is a literal; else UNKNOWN."""
        returns = self.returns
        if len(returns) != 1 or returns[0].value is None:
            return UNKNOWN
        return literal(returns[0].value)


@dataclass
class ClassFacts:
    """The module class, with methods and attributes merged along its in-file bases."""

    name: str
    line: int
    docstring: str | None
    methods: dict[str, FuncFacts] = field(default_factory=dict)
    attributes: dict[str, int] = field(default_factory=dict)
    #: True when every base is BaseModule or a class in this file: then "not defined here"
    #: means "inherited from BaseModule", and missing REQUIRED methods are certain.
    bases_known: bool = True
    concrete: bool = True


@dataclass
class ModuleFacts:
    """Everything the static pass learned about one source file."""

    path: str
    display: str
    #: The class the caller named (`file.py:Class`), if any.
    class_name: str | None = None
    docstring: str | None = None
    error: str | None = None
    error_line: int = 1
    module_class: ClassFacts | None = None
    candidates: list[ClassFacts] = field(default_factory=list)
    #: (dotted name, line) for every `import x`, `from x import y` (as `x.y`, plus `x`).
    imports: list[tuple[str, int]] = field(default_factory=list)
    #: (dotted callee with import aliases resolved, line, call node, enclosing function).
    calls: list[tuple[str, int, ast.Call, FuncFacts | None]] = field(default_factory=list)
    #: ids of Call nodes that are directly awaited (`await x.recv()` is not blocking).
    awaited: set[int] = field(default_factory=set)

    def where(self, line: int | None = None) -> str:
        """`file:line` for report locations."""
        return f"{self.display}:{line if line is not None else 1}"


_BASE_NAMES = ("BaseModule",)
_REQUIRED = ("initialize", "get_metadata", "get_required_permissions")


def literal(node: ast.AST, depth: int = 0) -> Any:
    """Rebuild a literal (constants, containers, -n, `ModuleCapability.X`); else UNKNOWN.

    Dict entries whose value is computed keep their key with the value UNKNOWN, so
    `{"name": self.name, "author": "me"}` still shows that an author is given.
    """
    if depth > _MAX_DEPTH:
        return UNKNOWN
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                return UNKNOWN  # {**other}: the full key set is unknown
            k = literal(key, depth + 1)
            if k is UNKNOWN or not isinstance(k, str | int | float | bool):
                return UNKNOWN
            out[k] = literal(value, depth + 1)
        return out
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = literal(node.operand, depth + 1)
        return -v if isinstance(v, int | float) and not isinstance(v, bool) else UNKNOWN
    if isinstance(node, ast.Attribute) and dotted(node.value).endswith("ModuleCapability"):
        return node.attr.lower()
    return UNKNOWN


def unparse(node: ast.AST) -> str:
    """`ast.unparse(node)` for report text. It recurses deeper per level than the walker
    that bounds the nesting `read_facts` accepts: past its depth, a placeholder."""
    try:
        return ast.unparse(node)
    except RecursionError:
        return "<nested too deeply to show>"


def contains_unknown(value: Any, depth: int = 0) -> bool:
    """True when any part of a rebuilt literal is UNKNOWN."""
    if value is UNKNOWN or depth > _MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v, depth + 1) for v in value)
    return False


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, else ''."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _docstring(node: ast.AST) -> str | None:
    try:
        doc = ast.get_docstring(node)  # type: ignore[arg-type]
    except TypeError:
        return None
    return doc if doc and doc.strip() else None


def _func(node: ast.FunctionDef | ast.AsyncFunctionDef, owner: str) -> FuncFacts:
    return FuncFacts(
        name=node.name,
        line=node.lineno,
        is_async=isinstance(node, ast.AsyncFunctionDef),
        node=node,
        docstring=_docstring(node),
        owner=owner,
    )


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


class _Hierarchy:
    """The file's top-level classes, each examined once.

    Class bases form a graph, not a tree: walking every path from a class to its roots is
    exponential in the number of classes (30 one-line classes, each naming the two before it
    as bases, took 18 s; 60 would take years, while Python itself imports them at once). So each
    class's answer is kept, a class met again on its own path is treated as unknown (a cycle
    cannot exist at run time), and the members copied while merging are counted: a file past
    `_MAX_MERGED` is reported as too complex to analyse.
    """

    def __init__(self, local: dict[str, ast.ClassDef]) -> None:
        self.local = local
        self.module: dict[str, bool] = {}
        self.merged: dict[str, ClassFacts | None] = {}
        self.copied = 0

    def is_module_class(self, name: str) -> bool:
        if name in self.module:
            return self.module[name]
        self.module[name] = False  # on the path: a cycle ends here
        found = False
        for base in self.local[name].bases:
            base_name = dotted(base)
            if base_name.rsplit(".", 1)[-1] in _BASE_NAMES or (
                base_name in self.local and self.is_module_class(base_name)
            ):
                found = True
                break
        self.module[name] = found
        return found

    def merge(self, name: str) -> ClassFacts | None:
        """The class's facts with its in-file bases merged; None for a class on a cycle."""
        if name in self.merged:
            return self.merged[name]
        self.merged[name] = None  # on the path: a cycle ends here
        node = self.local[name]
        facts = ClassFacts(name=node.name, line=node.lineno, docstring=_docstring(node))
        # Bases first, so the class's own definitions override them (a simplified MRO).
        for base in reversed(node.bases):
            base_name = dotted(base)
            if base_name.rsplit(".", 1)[-1] in _BASE_NAMES:
                continue
            inherited = self.merge(base_name) if base_name in self.local else None
            if inherited is not None:
                self.copied += len(inherited.methods) + len(inherited.attributes)
                if self.copied > _MAX_MERGED:
                    raise _TooComplex
                facts.methods.update(inherited.methods)
                facts.attributes.update(inherited.attributes)
                facts.bases_known = facts.bases_known and inherited.bases_known
            elif base_name not in ("ABC", "abc.ABC", "object", "Generic") and not (
                base_name.startswith("typing.")
            ):
                facts.bases_known = False
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                facts.methods[stmt.name] = _func(stmt, node.name)
                facts.attributes.pop(stmt.name, None)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        facts.attributes[target.id] = stmt.lineno
                        facts.methods.pop(target.id, None)
        facts.concrete = all(m in facts.methods for m in _REQUIRED)
        self.merged[name] = facts
        return facts


class _TooComplex(Exception):
    """More inherited members to merge than `_MAX_MERGED`."""


class _Walker(ast.NodeVisitor):
    """Collect imports and calls, resolving aliases (`from time import sleep as zz`)."""

    def __init__(self, facts: ModuleFacts, methods: dict[int, FuncFacts]) -> None:
        self.facts = facts
        self.aliases: dict[str, str] = {}
        self.methods = methods
        self.current: list[FuncFacts | None] = [None]

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.facts.imports.append((alias.name, node.lineno))
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = "." * node.level + (node.module or "")
        self.facts.imports.append((base, node.lineno))
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            self.facts.imports.append((full, node.lineno))
            self.aliases[alias.asname or alias.name] = full

    def _visit_func(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # A nested plain `def` inside an async method is not the async method's body.
        self.current.append(self.methods.get(id(node)) or _func(node, ""))
        self.generic_visit(node)
        self.current.pop()

    visit_FunctionDef = _visit_func
    visit_AsyncFunctionDef = _visit_func

    def visit_Await(self, node: ast.Await) -> None:
        if isinstance(node.value, ast.Call):
            self.facts.awaited.add(id(node.value))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = dotted(node.func)
        if name:
            head, _, rest = name.partition(".")
            resolved = self.aliases.get(head, head)
            name = f"{resolved}.{rest}" if rest else resolved
        elif isinstance(node.func, ast.Attribute):
            name = "?." + node.func.attr  # a method on a computed receiver: `x().recv()`
        self.facts.calls.append((name, node.lineno, node, self.current[-1]))
        self.generic_visit(node)


#: Facts kept: at most this many file versions, and this many bytes of source in all (the
#: facts hold the parsed tree: up to ~400 times the size of the source; ~200 MB here).
_FACTS_CACHE_SIZE = 64
_FACTS_CACHE_BYTES = 512 * 1024
_facts_cache: OrderedDict[tuple[str, str | None, str, FileIdentity], ModuleFacts] = OrderedDict()
_facts_lock = threading.Lock()


def read_facts(
    path: str, class_name: str | None = None, *, display: str | None = None
) -> ModuleFacts:
    """Parse `path` (never execute it) and collect the facts the static checks need.

    The facts of the file's last few versions are kept, keyed by `FileIdentity`: loading the
    same unchanged module again does not parse it again; any change to the file does. The
    result is shared between callers and must be treated as read-only (every check does).
    """
    identity = file_identity(path)
    key = (path, class_name, display or path, identity) if identity is not None else None
    if key is not None:
        with _facts_lock:
            cached = _facts_cache.get(key)
            if cached is not None:
                _facts_cache.move_to_end(key)
                return cached
    facts, read_as = _read_facts(path, class_name, display)
    if read_as is not None:
        with _facts_lock:
            # Under the identity of what was read (fstat of the open file), not the stat
            # above: a file replaced in between is cached as the version that was parsed.
            _facts_cache[(path, class_name, display or path, read_as)] = facts
            while len(_facts_cache) > _FACTS_CACHE_SIZE or (
                len(_facts_cache) > 1 and sum(k[3][2] for k in _facts_cache) > _FACTS_CACHE_BYTES
            ):
                _facts_cache.popitem(last=False)
    return facts


def _read_facts(
    path: str, class_name: str | None, display: str | None
) -> tuple[ModuleFacts, FileIdentity | None]:
    """The facts, and the identity of the file version they describe (None: do not cache,
    e.g. a read error that may not happen again)."""
    facts = ModuleFacts(path=path, display=display or path, class_name=class_name)
    read_as: FileIdentity | None = None
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > MAX_SOURCE_BYTES:
                facts.error = (
                    f"source is {st.st_size} bytes; the validator reads at most {MAX_SOURCE_BYTES}"
                )
                return facts, identity_of(st)
            source = f.read(MAX_SOURCE_BYTES + 1)
            read_as = identity_of(st)
        if len(source) > MAX_SOURCE_BYTES:  # grew between the fstat and the read
            facts.error = (
                f"source is over {MAX_SOURCE_BYTES} bytes; the validator reads at most "
                f"{MAX_SOURCE_BYTES}"
            )
            return facts, None
        with PARSE_LOCK:  # one parse at a time in the host (see plexisandbox._compiled)
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        facts.error = f"{exc.msg}"
        facts.error_line = exc.lineno or 1
        return facts, read_as
    except (OSError, ValueError, RecursionError, MemoryError) as exc:
        facts.error = f"{type(exc).__name__}: {exc}"
        return facts, None
    facts.docstring = _docstring(tree)
    classes = _Hierarchy(_classes(tree))
    try:
        names = [name for name in classes.local if classes.is_module_class(name)]
        facts.candidates = [c for c in map(classes.merge, names) if c is not None]
    except RecursionError:
        facts.error = "the classes inherit too deeply to analyse"
        return facts, read_as
    except _TooComplex:
        facts.error = "the classes inherit too many members to analyse"
        return facts, read_as
    if class_name:
        chosen = [c for c in facts.candidates if c.name == class_name]
    else:
        chosen = [c for c in facts.candidates if c.concrete or not c.bases_known]
        if not chosen and facts.candidates:
            # Abstract everywhere: report against the most derived (last) one.
            chosen = facts.candidates[-1:]
    facts.module_class = chosen[-1] if len(chosen) >= 1 else None
    methods = {
        id(f.node): f for f in (facts.module_class.methods.values() if facts.module_class else ())
    }
    try:
        _Walker(facts, methods).visit(tree)
    except RecursionError:
        facts.error = "the source nests too deeply to analyse"
        # No check may read the tree either (ast.unparse of an annotation recurses as deep).
        facts.module_class, facts.candidates = None, []
    return facts, read_as
