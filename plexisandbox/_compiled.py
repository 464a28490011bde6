"""Host side: a module file compiled once per version, for its workers to run after GO.

A worker would otherwise read and compile the module's source itself after GO, every time a
worker starts (~0.3 ms here, and the compiler's writes to memory shared with the zygote). The
host compiles the same bytes once per file version and sends the code with BOOT
(`ResolvedSource` kind "file" gains "code" and "magic"); the worker still runs it only after
GO, inside its confinement, exactly where it would have run its own compilation.

Why this is safe:
- Compiling parses and generates bytecode; it runs nothing. The host already parses every
  module it validates (`_validation._facts`), so a hostile file reaches no new code in the
  host but the code generator, behind the parser's and the symbol table's own depth limits.
  Files over `MAX_SOURCE_BYTES` are left to the worker (a compile is not free).
- So is every file with `finally` in it: the code generator emits a finally body once per
  way out of its `try` (fall-through, exception, each return/break/continue), and nested
  finally bodies multiply. A kilobyte of nested try/finally compiles to gigabytes over
  seconds, which the host must never pay; without `finally` the output grows with the source.
- The code object travels host → worker only, as marshal data from the trusted side; the
  host never unmarshals or unpickles anything a worker sent. The worker checks the marshal
  format (`importlib.util.MAGIC_NUMBER`) and compiles the file itself on any mismatch.
- Compiler warnings (an invalid escape sequence, `is` with a literal) belong in the
  module's own output: a file whose compilation warns is left to the worker, which prints
  them as before.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import threading
import warnings
from collections import OrderedDict

__all__ = [
    "MAGIC",
    "MAX_SOURCE_BYTES",
    "PARSE_LOCK",
    "FileIdentity",
    "compiled_module",
    "file_identity",
    "identity_of",
]

#: Largest module source the host compiles for its workers.
MAX_SOURCE_BYTES = 256 * 1024
#: The marshal/bytecode format the code is in; the worker compares it with its own.
MAGIC = importlib.util.MAGIC_NUMBER
#: CPython 3.11's parser keeps its recursion-depth counter per interpreter, not per thread:
#: concurrent parses (validation threads, this module) can fail with "SystemError: AST
#: recursion depth mismatch". One parse at a time in the host.
PARSE_LOCK = threading.Lock()

#: What identifies one version of a file's content without reading it: (device, inode, size,
#: mtime, ctime) in nanoseconds. Any write changes mtime and ctime; a file replaced by
#: another (an editor's rename, a fresh checkout) has another inode; `touch -d` cannot set
#: ctime. So two equal identities mean the same bytes, and caches keyed by it are safe.
FileIdentity = tuple[int, int, int, int, int]


def identity_of(st: os.stat_result) -> FileIdentity:
    """The `FileIdentity` of a stat result."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_identity(path: str) -> FileIdentity | None:
    """The path's current `FileIdentity`, None when it cannot be stat'ed."""
    try:
        return identity_of(os.stat(path))
    except OSError:
        return None


_CACHE_SIZE = 64
_cache: OrderedDict[str, tuple[FileIdentity, bytes | None]] = OrderedDict()


def compiled_module(path: str) -> bytes | None:
    """The marshalled code of the module file at `path` (compiled as the worker's importer
    would: optimize level 0, no inherited future flags), cached per `FileIdentity`; None
    when the worker should compile it itself (too large, `finally` in it, a syntax error or
    warning, another thread parsing just now, unreadable).

    Runs in the event loop: a cache hit is one stat; a miss compiles at most
    `MAX_SOURCE_BYTES`, never waiting for the parse lock.
    """
    identity = file_identity(path)
    if identity is None or identity[2] > MAX_SOURCE_BYTES:
        return None
    hit = _cache.get(path)
    if hit is not None and hit[0] == identity:
        _cache.move_to_end(path)
        return hit[1]
    if not PARSE_LOCK.acquire(blocking=False):
        return None  # a validation thread is parsing a file: the worker compiles this one
    try:
        with open(path, "rb") as f:
            read_as = identity_of(os.fstat(f.fileno()))
            source = f.read(MAX_SOURCE_BYTES + 1)
        data: bytes | None = None
        if len(source) <= MAX_SOURCE_BYTES and b"finally" not in source:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                code = compile(source, path, "exec", dont_inherit=True, optimize=0)
            data = None if caught else marshal.dumps(code)
    except (OSError, SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        return None  # the worker meets the same problem and reports it as it always did
    finally:
        PARSE_LOCK.release()
    # Under the identity of what was read (fstat of the open file): a file replaced since
    # the stat above is cached as the version that was compiled.
    _cache[path] = (read_as, data)
    _cache.move_to_end(path)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return data
