"""The wire codec, without processes: frame limits, strict decoding, message shapes."""

from __future__ import annotations

import datetime
import resource
import struct
import time

import msgpack
import pytest

from plexisandbox._protocol import (
    DEFAULT_MAX_FRAME,
    HEADER,
    MAX_CONTAINERS,
    MAX_DEPTH,
    WIRE_VERSION,
    WORKER_SHAPES,
    FrameDecoder,
    Op,
    ProtocolError,
    check_shape,
    decode_body,
    encode,
    pack_body,
)


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def test_wire_version_is_an_int_and_the_header_is_4_bytes_big_endian() -> None:
    assert isinstance(WIRE_VERSION, int)
    assert HEADER.size == 4
    frame = encode([Op.PONG, 7])
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert msgpack.unpackb(frame[4:]) == [Op.PONG, 7]


def test_round_trip_of_several_frames_in_one_feed() -> None:
    messages = [[Op.PONG, i] for i in range(50)] + [[Op.RESULT, 1, {"a": [1, b"x", None]}]]
    data = b"".join(encode(m) for m in messages)
    decoder = FrameDecoder()
    assert decoder.feed(data) == messages
    assert decoder.pending == 0


def test_frames_split_at_every_byte_boundary() -> None:
    messages = [[Op.RESULT, 1, "héllo"], [Op.LOG, 20, "x", "y" * 300], [Op.PONG, 2]]
    data = b"".join(encode(m) for m in messages)
    for cut in range(len(data) + 1):
        decoder = FrameDecoder()
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert got == messages, cut
        assert decoder.pending == 0


def test_byte_at_a_time_feeding() -> None:
    messages = [[Op.RESULT, 9, list(range(100))], [Op.ACK, 3]]
    decoder = FrameDecoder()
    got = []
    for byte in b"".join(encode(m) for m in messages):
        got += decoder.feed(bytes([byte]))
    assert got == messages


def test_truncated_frame_waits_for_the_rest_and_counts_pending() -> None:
    frame = encode([Op.RESULT, 1, "x" * 1000])
    decoder = FrameDecoder()
    assert decoder.feed(frame[:3]) == []  # not even a whole header
    assert decoder.pending == 3
    assert decoder.feed(frame[3:-1]) == []
    assert decoder.pending == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [[Op.RESULT, 1, "x" * 1000]]
    assert decoder.pending == 0


def test_oversized_header_is_rejected_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame=1024)
    with pytest.raises(ProtocolError, match="frame of 1025 bytes announced; the limit is 1024"):
        decoder.feed(HEADER.pack(1025))  # only the header: no body was ever sent


def test_largest_header_is_rejected_with_the_default_limit() -> None:
    with pytest.raises(ProtocolError, match="announced"):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


def test_frame_at_exactly_the_limit_is_accepted() -> None:
    body = pack_body([Op.RESULT, 1, b""])
    limit = len(body)
    frame = HEADER.pack(limit) + body
    assert FrameDecoder(max_frame=limit).feed(frame) == [[Op.RESULT, 1, b""]]
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame=limit - 1).feed(frame)


def test_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_FRAME == 16 * 1024 * 1024


def test_a_bad_frame_after_a_good_one_in_the_same_feed_still_raises() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(encode([Op.PONG, 1]) + HEADER.pack(1) + b"\xc1")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xc1", "undecodable"),  # the one byte msgpack never uses
        (b"\x92\x01", "undecodable"),  # an array of two with one element
        (b"\x01\x02", "undecodable"),  # extra data after the value
        (msgpack.packb(msgpack.ExtType(5, b"data")), "ext type 5 is not allowed"),
        (b"\xd6\xfe" + b"data", "ext type -2 is not allowed"),  # a reserved negative type
        (b"\xd6\xff\x00", "undecodable"),  # a truncated timestamp
        (b"\xc7\x03\xff\x00\x00\x00", "undecodable"),  # a timestamp of a bad length
        (msgpack.packb({(1, 2): 3}), "undecodable"),  # an array as a map key
        (b"\xa2\xff\xfe", "undecodable"),  # a str that is not UTF-8
    ],
)
def test_malformed_bodies_are_protocol_errors(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        FrameDecoder().feed(HEADER.pack(len(body)) + body)


def test_nesting_up_to_the_limit_is_accepted_beyond_it_refused() -> None:
    at_limit = pack_body(_nested(MAX_DEPTH - 1))  # MAX_DEPTH levels including the leaf's array
    assert decode_body(at_limit) == _nested(MAX_DEPTH - 1)
    with pytest.raises(ProtocolError, match=f"deeper than {MAX_DEPTH}"):
        decode_body(pack_body(_nested(MAX_DEPTH + 1)))
    deep_maps: object = 0
    for _ in range(MAX_DEPTH + 1):
        deep_maps = {"k": deep_maps}
    with pytest.raises(ProtocolError, match="deeper"):
        decode_body(pack_body(deep_maps))


def test_very_deep_nesting_does_not_crash_the_decoder() -> None:
    body = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(ProtocolError):
        decode_body(body)


def test_length_limits_apply_to_containers_announced_huge() -> None:
    # An array header announcing 2**32-1 elements in a 5-byte body: refused, not allocated.
    with pytest.raises(ProtocolError):
        decode_body(b"\xdd\xff\xff\xff\xff")
    with pytest.raises(ProtocolError):
        decode_body(b"\xdf\xff\xff\xff\xff")  # a map of 2**32-1 entries
    with pytest.raises(ProtocolError):
        decode_body(b"\xdb\xff\xff\xff\xff")  # a str of 4 GiB


def test_strings_and_bytes_are_capped_by_the_frame_limit() -> None:
    body = pack_body("x" * 2000)
    with pytest.raises(ProtocolError):
        decode_body(body, max_frame=1000)
    assert decode_body(body, max_frame=4000) == "x" * 2000


def test_timestamps_decode_to_aware_utc_datetimes() -> None:
    when = datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=datetime.UTC)
    got = decode_body(pack_body(when))
    assert got == when
    assert got.tzinfo is not None
    assert got.utcoffset() == datetime.timedelta(0)


def test_decoded_values_are_plain_types() -> None:
    value = decode_body(pack_body({"a": (1, 2), "b": b"x", "c": {1: None}}))
    assert value == {"a": [1, 2], "b": b"x", "c": {1: None}}
    assert type(value["a"]) is list
    assert type(value["b"]) is bytes


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "builtins.object cannot cross"),
        ({"k": [1, {2: complex(1, 1)}]}, "builtins.complex cannot cross"),
        (2**64, "integer of 65 bits"),
        (-(2**63) - 1, "integer of 64 bits"),
        (datetime.datetime(2024, 1, 1), "naive datetime.datetime"),
        ("\ud800", "not valid UTF-8"),
        (datetime.date(2024, 1, 1), "datetime.date cannot cross"),
    ],
)
def test_unsendable_values_raise_type_error_naming_them(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        encode([Op.RESULT, 1, value])


def test_tuples_and_sets_encode_as_arrays() -> None:
    assert decode_body(pack_body((1, (2, 3)))) == [1, [2, 3]]
    assert decode_body(pack_body({5})) == [5]
    assert decode_body(pack_body(frozenset())) == []


def test_64_bit_integer_edges_encode() -> None:
    for value in (2**64 - 1, 2**63 - 1, -(2**63), 0, -1):
        assert decode_body(pack_body(value)) == value


# -- check_shape ---------------------------------------------------------------------------


GOOD: list[list[object]] = [
    [Op.HELLO, {"wire": 1}],
    [Op.CONFINED, {"layers": []}],
    [Op.READY, {}],
    [Op.RESULT, 1, None],
    [Op.RESULT, 2**63, {"any": ["thing"]}],
    [Op.ERROR, 1, "ValueError", "bad", "traceback"],
    [Op.PONG, 3],
    [Op.LOG, 20, "name", "text"],
    [Op.EMIT, "event", {"data": 1}],
    [Op.SUBSCRIBE, "event.*"],
    [Op.REQUEST, 1, "service", "messages.send", "", {}],
    [Op.STACKS_DUMP, 1, "stacks"],
    [Op.FATAL, "import", "ImportError", "no", "tb"],
    [Op.ACK, 1],
]


@pytest.mark.parametrize("message", GOOD, ids=lambda m: Op(m[0]).name)  # type: ignore[call-overload, index]
def test_check_shape_accepts_each_worker_message(message: list[object]) -> None:
    wire = _as_decoded(message)
    assert check_shape(wire) is Op(message[0])  # type: ignore[call-overload]
    assert check_shape(decode_body(pack_body(message))) is Op(message[0])  # type: ignore[call-overload]


def _as_decoded(message: object) -> object:
    """What the decoder yields: the op as a plain int, never an enum."""
    if isinstance(message, list) and message and isinstance(message[0], Op):
        return [int(message[0]), *message[1:]]
    return message


def test_every_worker_op_has_a_shape_and_none_of_the_host_ops() -> None:
    worker_ops = {op for op in Op if op >= 32}
    assert set(WORKER_SHAPES) == worker_ops
    assert {m[0] for m in GOOD} <= worker_ops


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (42, "must be an array"),
        ([], "must be an array"),
        ({"op": 35}, "must be an array"),
        (["35", 1, None], "must be an array"),
        ([True, 1, None], "must be an array"),  # a bool is not an op
        ([99, 1], "unknown or out-of-direction op 99"),
        ([Op.CALL, 1, "echo", {}], "out-of-direction op 3"),
        ([Op.CANCEL, 1], "out-of-direction"),
        ([Op.RESULT, 1], "RESULT needs 2 fields, got 1"),
        ([Op.RESULT, 1, None, None], "RESULT needs 2 fields, got 3"),
        ([Op.RESULT, "1", None], "RESULT field 1 must be int, got str"),
        ([Op.RESULT, True, None], "RESULT field 1 must be int, got bool"),
        ([Op.RESULT, 1.0, None], "must be int, got float"),
        ([Op.ERROR, 1, "T", b"m", "tb"], "ERROR field 3 must be str, got bytes"),
        ([Op.LOG, "20", "n", "t"], "LOG field 1 must be int"),
        ([Op.HELLO, [1]], "HELLO field 1 must be dict, got list"),
        ([Op.REQUEST, 1, "service", "x", "", []], "REQUEST field 5 must be dict"),
        ([Op.SUBSCRIBE, None], "SUBSCRIBE field 1 must be str"),
    ],
)
def test_check_shape_rejects_malformed_messages(message: object, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        check_shape(_as_decoded(message))
    assert reason in str(info.value)


def test_check_shape_wants_the_op_as_decoded_not_an_enum() -> None:
    # Decoded frames carry plain ints; an enum can only come from host code, never the wire.
    with pytest.raises(ProtocolError, match="must be an array"):
        check_shape([Op.PONG, 1])


def test_check_shape_error_message_is_bounded() -> None:
    with pytest.raises(ProtocolError) as info:
        check_shape("x" * 100_000)
    assert len(str(info.value)) < 200


def test_op_numbering_separates_directions() -> None:
    assert all(op < 32 for op in (Op.BOOT, Op.GO, Op.CALL, Op.LIFE, Op.CANCEL, Op.PING))
    assert all(op >= 32 for op in (Op.HELLO, Op.RESULT, Op.ERROR, Op.ACK))
    assert len({int(op) for op in Op}) == len(Op)


def _empty_containers_frame() -> bytes:
    # [RESULT, 1, [[[], [], … 15 empty arrays], … about a million of those]]: 16 MiB that
    # would decode into ~17 million Python lists.
    inner = b"\x9f" + b"\x90" * 15
    count = min((DEFAULT_MAX_FRAME - 16) // len(inner), 1024 * 1024)
    body = b"\x93\x23\x01\xdd" + struct.pack(">I", count) + inner * count
    assert len(body) <= DEFAULT_MAX_FRAME
    return HEADER.pack(len(body)) + body


def test_a_frame_of_empty_containers_is_refused_before_it_costs_the_host_memory_and_time() -> None:
    """Containers are counted as the decoder builds them (for bodies large enough to hold
    more than MAX_CONTAINERS): refused after ~200k, not after ~17 million (1.2 GiB and ~4 s
    of the host's event loop for one frame)."""
    frame = _empty_containers_frame()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.perf_counter()
    with pytest.raises(ProtocolError, match=f"more than {MAX_CONTAINERS} containers"):
        FrameDecoder(DEFAULT_MAX_FRAME).feed(frame)
    elapsed = time.perf_counter() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 200, f"decoding one refused frame took {grown_mib:.0f} MiB of host memory"
    # A security bound, not a benchmark: ~4 s before the fix, ~0.05 s after.
    assert elapsed < 1.0, f"decoding one refused frame blocked the host for {elapsed:.2f}s"
