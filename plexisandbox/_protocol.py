"""Pure core (both sides): the wire protocol — frames, message kinds, strict decoding.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack. Every message
is a msgpack array whose first element is an `Op`. The host treats every byte from a worker
as hostile: the length is checked against the frame limit *before* the body is read, the body
is decoded with explicit size limits into plain types only (no ext types but timestamps, never
pickle), nesting is bounded, and the message's shape is checked against `WORKER_SHAPES`.
See docs/protocol.md for the handshake and the versioning rules.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import mmap
import os
import struct
import threading
from typing import Any, Final

import msgpack

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER",
    "MAX_DEPTH",
    "WIRE_VERSION",
    "FrameDecoder",
    "Op",
    "ProtocolError",
    "check_shape",
    "encode",
    "pack_body",
]

#: Bumped on any incompatible change to frames or messages; both sides compare it first.
WIRE_VERSION: Final = 1
#: Default bound on one frame's body (a module's result or argument), in bytes.
DEFAULT_MAX_FRAME: Final = 16 * 1024 * 1024
#: Deepest nesting of arrays/maps accepted from a worker.
MAX_DEPTH: Final = 64
HEADER: Final = struct.Struct(">I")


class ProtocolError(Exception):
    """Bytes that break the protocol; the host turns it into `ProtocolViolation`."""


class Op(enum.IntEnum):
    """Message kinds. Host→worker are below 32, worker→host from 32."""

    # host -> worker
    BOOT = 1  # [BOOT, {wire, module, mode, policy, source, log_level, max_frame}]
    GO = 2  # [GO] : confinement verified by the host; import the module now
    CALL = 3  # [CALL, id, method, kwargs]
    LIFE = 4  # [LIFE, id, operation, argument]
    CANCEL = 5  # [CANCEL, id]
    PING = 6  # [PING, id] (data channel: answered by the worker's event loop)
    EVENT = 7  # [EVENT, event, data, source]
    REPLY = 8  # [REPLY, id, ok, value | [type, message]] : answer to a worker REQUEST
    STACKS = 9  # [STACKS, id] (control channel): dump every thread's Python stack
    CTL_PING = 10  # [CTL_PING, id] (control channel: answered by the control thread)
    # worker -> host
    HELLO = 32  # [HELLO, {wire, pid, python}]
    CONFINED = 33  # [CONFINED, {layers: [...], missing: {layer: why}}]
    READY = 34  # [READY, description]
    RESULT = 35  # [RESULT, id, value]
    ERROR = 36  # [ERROR, id, type, message, traceback]
    PONG = 37  # [PONG, id]
    LOG = 38  # [LOG, level, logger, text]
    EMIT = 39  # [EMIT, event, data]
    SUBSCRIBE = 40  # [SUBSCRIBE, event]
    REQUEST = 41  # [REQUEST, id, kind, target, method, kwargs]
    STACKS_DUMP = 42  # [STACKS_DUMP, id, text]
    FATAL = 43  # [FATAL, stage, type, message, traceback] : the worker cannot go on
    ACK = 44  # [ACK, id] : a CALL/LIFE was received (progress, not completion)
    EVENT_DONE = 45  # [EVENT_DONE, n] : n more events handled (the host's delivery window)


# Shapes of worker->host messages: the type of each element after the Op. `object` means
# any decoded value (already bounded by the decoder). Anything else is a violation.
_ANY = object
WORKER_SHAPES: Final[dict[int, tuple[type, ...]]] = {
    Op.HELLO: (dict,),
    Op.CONFINED: (dict,),
    Op.READY: (dict,),
    Op.RESULT: (int, _ANY),
    Op.ERROR: (int, str, str, str),
    Op.PONG: (int,),
    Op.LOG: (int, str, str),
    Op.EMIT: (str, _ANY),
    Op.SUBSCRIBE: (str,),
    Op.REQUEST: (int, str, str, str, dict),
    Op.STACKS_DUMP: (int, str),
    Op.FATAL: (str, str, str, str),
    Op.ACK: (int,),
    Op.EVENT_DONE: (int,),
}


def _default(obj: Any) -> Any:
    # Tuples and sets travel as arrays; anything else is refused with its type's name so the
    # module author sees which value could not cross the boundary.
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    # msgpack hands us what it could not pack natively: name the real problem for the two
    # values that *look* supported (an int beyond 64 bits, a datetime without a timezone).
    if isinstance(obj, int) and not isinstance(obj, bool):
        raise TypeError(
            f"an integer of {obj.bit_length()} bits cannot cross the sandbox boundary: msgpack "
            f"carries integers from -2**63 to 2**64-1; send larger ones as str"
        )
    if isinstance(obj, datetime.datetime) and obj.tzinfo is None:
        raise TypeError(
            "a naive datetime.datetime (no tzinfo) cannot cross the sandbox boundary; give it "
            "a timezone, e.g. datetime.now(timezone.utc)"
        )
    raise TypeError(
        f"a value of type {type(obj).__module__}.{type(obj).__qualname__} cannot cross the "
        "sandbox boundary; return plain data (None, bool, int, float, str, bytes, list, dict, "
        "datetime)"
    )


_packer_opts: Final = {"use_bin_type": True, "datetime": True, "default": _default}


# msgpack.packb() builds a Packer (and its 256 KiB buffer) per message: a reused one per
# thread costs a fifth. A Packer that raised is reset by msgpack before the next message.
_packers = threading.local()


def pack_body(message: Any) -> bytes:
    """msgpack-encode one message without the header.

    Raises:
        TypeError: a value msgpack cannot carry; the message names its type.
    """
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(**_packer_opts)
    try:
        body: bytes = packer.pack(message)
        if len(body) > 1 << 20:
            _packers.packer = None  # its buffer grew to fit: do not keep megabytes around
        return body
    except OverflowError as exc:
        raise TypeError(f"an integer does not fit in 64 bits: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise TypeError(
            f"a str that is not valid UTF-8 ({exc.reason} at index {exc.start}) cannot cross "
            "the sandbox boundary"
        ) from exc


def encode(message: Any) -> bytes:
    """One complete frame: header plus body.

    Raises:
        TypeError: a value msgpack cannot carry.
    """
    body = pack_body(message)
    return HEADER.pack(len(body)) + body


def _ext_hook(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack ext type {code} is not allowed (only timestamps)")


#: Non-empty containers the depth check visits before it refuses a message outright: the walk
#: must stay cheap even for a frame of millions of tiny containers (an amplification attack).
MAX_CONTAINERS: Final = 200_000


#: msgpack's array and map headers: fixmap, fixarray, array 16/32, map 16/32.
_CONTAINER_BYTES: Final = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
_MARKS_SCAN_MAX: Final = 64 * 1024


def _container_marks(body: bytes | memoryview) -> int:
    """How many bytes of `body` could be array or map headers (at least as many as the
    containers in it, so at least its nesting depth)."""
    raw = bytes(body)
    return len(raw) - len(raw.translate(None, _CONTAINER_BYTES))


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Empty containers cannot nest deeper, so only non-empty ones are pushed; the budget bounds
    # the walk whatever the shape.
    stack: list[tuple[Any, int]] = [(value, 1)]
    budget = MAX_CONTAINERS
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item if isinstance(item, list) else item.values()
        for child in children:
            if child and isinstance(child, list | dict):
                budget -= 1
                if budget < 0:
                    raise ProtocolError(f"message holds more than {MAX_CONTAINERS} containers")
                stack.append((child, depth + 1))
    return False


def decode_body(body: bytes | memoryview, max_frame: int = DEFAULT_MAX_FRAME) -> Any:
    """Strictly decode one frame body into plain Python values.

    Raises:
        ProtocolError: malformed msgpack, an oversized element, an ext type, deep nesting.
    """
    hooks: dict[str, Any] = {}
    if len(body) > MAX_CONTAINERS:
        # Each container costs the host ~60 bytes of Python object for one byte of msgpack
        # (an empty array is 0x90): counted as the decoder builds them, so a frame of
        # millions of empty containers is refused before it costs gigabytes, not after.
        # A smaller body cannot hold more than MAX_CONTAINERS: no hook, no cost.
        built = itertools.count(1)

        def counted(container: Any) -> Any:
            if next(built) > MAX_CONTAINERS:
                raise ProtocolError(f"message holds more than {MAX_CONTAINERS} containers")
            return container

        hooks = {"list_hook": counted, "object_hook": counted}
    try:
        value = msgpack.unpackb(
            body,
            raw=False,
            use_list=True,
            strict_map_key=False,
            timestamp=3,
            ext_hook=_ext_hook,
            max_str_len=max_frame,
            max_bin_len=max_frame,
            max_array_len=1024 * 1024,
            max_map_len=256 * 1024,
            max_ext_len=16,
            **hooks,
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many types for malformed input
        raise ProtocolError(f"undecodable frame body ({type(exc).__name__}: {exc})") from exc
    # Only a body with more than MAX_DEPTH container headers can nest deeper than MAX_DEPTH:
    # counted (an upper bound: the same bytes occur in other values) in one pass in C for a
    # small body, instead of a walk in Python of every decoded container.
    if (
        len(body) > MAX_DEPTH
        and isinstance(value, list | dict)
        and (len(body) > _MARKS_SCAN_MAX or _container_marks(body) > MAX_DEPTH)
        and _depth_exceeds(value, MAX_DEPTH)
    ):
        raise ProtocolError(f"message nests deeper than {MAX_DEPTH} levels")
    return value


_scratch = threading.local()
_SCRATCH_SIZE = 1024 * 1024  # a read takes at most this much: one enlarged pipe


class FrameDecoder:
    """Incremental frame parser: `feed(bytes)` returns the complete messages so far.

    The announced length is checked against `max_frame` as soon as the 4 header bytes are
    in, so a hostile peer cannot make us buffer an oversized body.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Add bytes; return every message completed by them, in order.

        Raises:
            ProtocolError: an oversized frame or an undecodable body.
        """
        buf = self._buf
        if buf:
            buf += data
            src: Any = buf
        else:
            src = data  # nothing pending: decode in place, keep only an incomplete tail
        view = memoryview(src)
        out: list[Any] = []
        pos = 0
        end = len(view)
        try:
            while end - pos >= 4:
                (size,) = HEADER.unpack_from(view, pos)
                if size > self._max:
                    raise ProtocolError(
                        f"frame of {size} bytes announced; the limit is {self._max} bytes"
                    )
                if end - pos - 4 < size:
                    break
                body = view[pos + 4 : pos + 4 + size]
                try:
                    out.append(decode_body(body, self._max))
                finally:
                    body.release()
                pos += 4 + size
            if src is not buf and pos < end:
                with view[pos:] as tail:
                    buf += tail
        finally:
            view.release()  # a bytearray cannot shrink while a view of it exists
        if src is buf and pos:
            del buf[:pos]
        return out

    def read_from(self, fd: int) -> list[Any] | None:
        """Read what `fd` holds and return the messages it completes; None at end of file.

        One readv() into a per-thread buffer: `os.read(fd, big)` would allocate (and for a
        large size mmap, mremap and munmap) a fresh bytes object on every read — three extra
        syscalls per small message, more than the read itself.

        Raises:
            BlockingIOError, OSError: as os.readv.
            ProtocolError: as feed().
        """
        scratch = getattr(_scratch, "buffer", None)
        if scratch is None:
            # Anonymous memory: a page costs RAM only once a read reaches it (a bytearray
            # would be zeroed, all of it, in every worker).
            scratch = _scratch.buffer = mmap.mmap(-1, _SCRATCH_SIZE)
        count = os.readv(fd, [scratch])
        if not count:
            return None
        with memoryview(scratch) as whole, whole[:count] as data:
            return self.feed(data)

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return len(self._buf)


def check_shape(message: Any, shapes: dict[int, tuple[type, ...]] = WORKER_SHAPES) -> Op:
    """Check a decoded worker message against its shape; return its Op.

    Raises:
        ProtocolError: not an array, an unknown op, the wrong arity or element types.
    """
    if not isinstance(message, list) or not message or type(message[0]) is not int:
        raise ProtocolError(f"a message must be an array starting with an op, got {message!r:.80}")
    op = message[0]
    shape = shapes.get(op)
    if shape is None:
        raise ProtocolError(f"unknown or out-of-direction op {op}")
    if len(message) != len(shape) + 1:
        raise ProtocolError(f"{Op(op).name} needs {len(shape)} fields, got {len(message) - 1}")
    for i, (value, want) in enumerate(zip(message[1:], shape, strict=True), start=1):
        if want is not _ANY and not (type(value) is want or (want is int and _is_int(value))):
            raise ProtocolError(
                f"{Op(op).name} field {i} must be {want.__name__}, got {type(value).__name__}"
            )
    return Op(op)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
