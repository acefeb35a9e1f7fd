"""The columnar decoder: real captures, generated profiles and hostile bytes.

The C decoder parses untrusted uploads, so besides agreeing with upb (the
fallback) on every valid profile it must survive any byte string: the fuzz
tests below feed it random, structured-random and mutated inputs, and they are
also meant to be run against an AddressSanitizer build of the extension.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import itertools
import re
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from server.pprof import profile_pb2
from server.pprof.columns import (
    NATIVE,
    ProfileColumns,
    parse_columns,
    parse_columns_native,
    parse_columns_python,
)
from server.pprof.errors import ParseError

if NATIVE:
    from server.pprof import _wire

DATA = Path(__file__).resolve().parents[2] / "data"
RAW = {path.name: gzip.decompress(path.read_bytes()) for path in sorted(DATA.glob("*.pb.gz"))}
SMALL = sorted(name for name, raw in RAW.items() if len(raw) < 16_000)

needs_native = pytest.mark.skipif(
    not NATIVE, reason="server.pprof._wire is not built (`pip install -e .` compiles it from _wire.c)"
)

I64 = st.integers(-(2**63), 2**63 - 1)
U64 = st.integers(0, 2**64 - 1)


def wire_parse(raw: bytes | bytearray | memoryview) -> dict[str, object]:
    """``_wire.parse`` with every column as ``bytes``, so two results compare by content."""
    return {key: bytes(value) if isinstance(value, _wire.Column) else value for key, value in _wire.parse(raw).items()}


# --- a hand encoder, for encodings protobuf's serializer never produces -------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 is sent as its two's complement: negatives take 10 bytes
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def f_varint(field: int, n: int) -> bytes:
    return tag(field, 0) + varint(n)


def f_bytes(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def f_fixed64(field: int) -> bytes:
    return tag(field, 1) + bytes(range(8))


def f_fixed32(field: int) -> bytes:
    return tag(field, 5) + bytes(range(4))


def packed(values: Sequence[int]) -> bytes:
    return b"".join(varint(v) for v in values)


# --- comparisons ---------------------------------------------------------------------


def assert_same(a: ProfileColumns, b: ProfileColumns) -> None:
    for field in dataclasses.fields(ProfileColumns):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray), field.name
            assert x.dtype == y.dtype, field.name
            assert np.array_equal(x, y), field.name
        else:
            assert type(x) is type(y), field.name
            assert x == y, field.name


def split(offsets: NDArray[np.int64], *flats: NDArray[np.int64] | NDArray[np.uint64]) -> list[list[tuple[int, ...]]]:
    """Regroups flat columns into one list of rows per record, as the message nests them."""
    assert offsets[0] == 0
    assert np.all(np.diff(offsets) >= 0)
    assert all(len(flat) == offsets[-1] for flat in flats)
    rows = list(zip(*(flat.tolist() for flat in flats), strict=True))
    bounds = offsets.tolist()
    return [rows[start:end] for start, end in itertools.pairwise(bounds)]


def assert_matches_message(cols: ProfileColumns, msg: profile_pb2.Profile) -> None:
    """Checks the columns record by record against the upb message, independently of either backend."""
    # NUL is stored as U+FFFD (PostgreSQL's text cannot hold it), and counted.
    assert cols.strings == [text.replace("\0", "\ufffd") for text in msg.string_table]
    assert cols.strings_with_nul == sum(1 for text in msg.string_table if "\0" in text)
    assert cols.sample_type.reshape(-1, 2).tolist() == [[vt.type, vt.unit] for vt in msg.sample_type]
    samples = msg.sample
    assert len(cols.sample_loc_offsets) == len(samples) + 1
    assert split(cols.sample_loc_offsets, cols.sample_locs) == [[(i,) for i in s.location_id] for s in samples]
    assert split(cols.sample_value_offsets, cols.sample_values) == [[(v,) for v in s.value] for s in samples]
    assert split(cols.sample_label_offsets, cols.label_key, cols.label_str, cols.label_num, cols.label_num_unit) == [
        [(lb.key, lb.str, lb.num, lb.num_unit) for lb in s.label] for s in samples
    ]
    mappings = zip(
        cols.mapping_id.tolist(),
        cols.mapping_filename.tolist(),
        cols.mapping_build_id.tolist(),
        cols.mapping_memory_start.tolist(),
        cols.mapping_memory_limit.tolist(),
        cols.mapping_file_offset.tolist(),
        strict=True,
    )
    assert list(mappings) == [
        (m.id, m.filename, m.build_id, m.memory_start, m.memory_limit, m.file_offset) for m in msg.mapping
    ]
    locations = list(
        zip(cols.location_id.tolist(), cols.location_mapping_id.tolist(), cols.location_address.tolist(), strict=True)
    )
    assert locations == [(loc.id, loc.mapping_id, loc.address) for loc in msg.location]
    assert split(cols.location_line_offsets, cols.line_function_id, cols.line_line) == [
        [(line.function_id, line.line) for line in loc.line] for loc in msg.location
    ]
    functions = zip(
        cols.function_id.tolist(),
        cols.function_name.tolist(),
        cols.function_system_name.tolist(),
        cols.function_filename.tolist(),
        cols.function_start_line.tolist(),
        strict=True,
    )
    assert list(functions) == [(f.id, f.name, f.system_name, f.filename, f.start_line) for f in msg.function]
    assert cols.comment.tolist() == list(msg.comment)
    scalars = (cols.drop_frames, cols.keep_frames, cols.time_nanos, cols.duration_nanos, cols.period)
    assert scalars == (msg.drop_frames, msg.keep_frames, msg.time_nanos, msg.duration_nanos, msg.period)
    assert cols.default_sample_type == msg.default_sample_type
    assert cols.has_period_type == msg.HasField("period_type")
    assert (cols.period_type_type, cols.period_type_unit) == (msg.period_type.type, msg.period_type.unit)


def both_backends(raw: bytes) -> ProfileColumns:
    """Parses with both backends, checks they agree, and returns the columns."""
    fallback = parse_columns_python(raw)
    if NATIVE:
        assert_same(parse_columns_native(raw), fallback)
        assert_same(parse_columns(raw), fallback)
    return fallback


def message(raw: bytes) -> profile_pb2.Profile:
    msg = profile_pb2.Profile()
    msg.ParseFromString(raw)
    return msg


# --- real captures --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RAW))
def test_capture_backends_agree_with_the_message(name: str) -> None:
    raw = RAW[name]
    cols = both_backends(raw)
    msg = message(raw)
    assert_matches_message(cols, msg)
    # The aggregates the query code relies on, read straight off the message.
    assert int(cols.sample_values.sum()) == sum(sum(s.value) for s in msg.sample)
    assert len(cols.sample_loc_offsets) - 1 == len(msg.sample)
    assert len(cols.location_id) == len(msg.location)
    assert len(cols.line_line) == sum(len(loc.line) for loc in msg.location)
    assert len(cols.function_id) == len(msg.function)


def test_big_capture_is_production_sized() -> None:
    cols = both_backends(RAW["big_cpu.pb.gz"])
    assert len(cols.sample_loc_offsets) - 1 > 1000
    assert len(cols.location_id) > 5000
    assert cols.has_period_type


@needs_native
@pytest.mark.parametrize("backend", [parse_columns_native, parse_columns_python])
def test_columns_have_their_dtypes_and_are_read_only(backend: Callable[[bytes], ProfileColumns]) -> None:
    cols = backend(RAW["cpu.pb.gz"])
    unsigned = {
        "sample_locs",
        "mapping_id",
        "mapping_memory_start",
        "mapping_memory_limit",
        "mapping_file_offset",
        "location_id",
        "location_mapping_id",
        "location_address",
        "line_function_id",
        "function_id",
    }
    for field in dataclasses.fields(ProfileColumns):
        value = getattr(cols, field.name)
        if isinstance(value, np.ndarray):
            assert value.dtype == (np.uint64 if field.name in unsigned else np.int64), field.name
            assert value.ndim == 1
            assert not value.flags.writeable, field.name


# --- generated profiles -------------------------------------------------------------


@st.composite
def profiles(draw: st.DrawFn) -> profile_pb2.Profile:
    p = profile_pb2.Profile()
    p.string_table.extend(draw(st.lists(st.text(max_size=6), max_size=5)))
    for type_, unit in draw(st.lists(st.tuples(I64, I64), max_size=3)):
        p.sample_type.add(type=type_, unit=unit)
    for _ in range(draw(st.integers(0, 4))):
        sample = p.sample.add()
        sample.location_id.extend(draw(st.lists(U64, max_size=5)))
        sample.value.extend(draw(st.lists(I64, max_size=3)))
        for key, str_, num, unit in draw(st.lists(st.tuples(I64, I64, I64, I64), max_size=2)):
            sample.label.add(key=key, str=str_, num=num, num_unit=unit)
    for _ in range(draw(st.integers(0, 2))):
        p.mapping.add(
            id=draw(U64),
            memory_start=draw(U64),
            memory_limit=draw(U64),
            file_offset=draw(U64),
            filename=draw(I64),
            build_id=draw(I64),
            has_functions=draw(st.booleans()),
            has_inline_frames=draw(st.booleans()),
        )
    for _ in range(draw(st.integers(0, 3))):
        loc = p.location.add(id=draw(U64), mapping_id=draw(U64), address=draw(U64), is_folded=draw(st.booleans()))
        for function_id, line in draw(st.lists(st.tuples(U64, I64), max_size=3)):
            loc.line.add(function_id=function_id, line=line)
    for _ in range(draw(st.integers(0, 3))):
        p.function.add(id=draw(U64), name=draw(I64), system_name=draw(I64), filename=draw(I64), start_line=draw(I64))
    p.drop_frames, p.keep_frames, p.time_nanos, p.duration_nanos = draw(st.tuples(I64, I64, I64, I64))
    p.period, p.default_sample_type = draw(st.tuples(I64, I64))
    if draw(st.booleans()):
        p.period_type.SetInParent()  # present even when both fields are 0
        p.period_type.type, p.period_type.unit = draw(st.tuples(I64, I64))
    p.comment.extend(draw(st.lists(I64, max_size=3)))
    return p


@settings(max_examples=300, deadline=None)
@given(profiles())
def test_generated_profiles(p: profile_pb2.Profile) -> None:
    raw = p.SerializeToString()
    assert_matches_message(both_backends(raw), p)


# One field of a Sample in the order it goes on the wire: (field, value, as a packed run of one?)
SampleField = tuple[int, int, bool]


@st.composite
def unpacked_samples(draw: st.DrawFn) -> list[SampleField]:
    locs = [(1, v, packed_) for v, packed_ in draw(st.lists(st.tuples(U64, st.booleans()), max_size=5))]
    values = [(2, v, packed_) for v, packed_ in draw(st.lists(st.tuples(I64, st.booleans()), max_size=4))]
    return draw(st.permutations(locs + values))  # interleaved; each field keeps its own order


def encode_sample(fields: list[SampleField]) -> bytes:
    return b"".join(f_bytes(field, varint(v)) if as_packed else f_varint(field, v) for field, v, as_packed in fields)


@settings(max_examples=300, deadline=None)
@given(profiles(), st.lists(unpacked_samples(), max_size=3), st.lists(I64, max_size=3))
def test_unpacked_encodings(p: profile_pb2.Profile, extra: list[list[SampleField]], comments: list[int]) -> None:
    # Concatenated messages merge, so these samples and comments land after the serializer's packed ones.
    raw = p.SerializeToString()
    raw += b"".join(f_bytes(2, encode_sample(fields)) for fields in extra)
    raw += b"".join(f_varint(13, c) for c in comments)
    cols = both_backends(raw)
    assert_matches_message(cols, message(raw))
    tail = split(cols.sample_loc_offsets, cols.sample_locs)[len(p.sample) :]
    assert tail == [[(v,) for field, v, _ in fields if field == 1] for fields in extra]
    tail = split(cols.sample_value_offsets, cols.sample_values)[len(p.sample) :]
    assert tail == [[(v,) for field, v, _ in fields if field == 2] for fields in extra]
    assert cols.comment.tolist() == [*p.comment, *comments]


# --- wire-format details ---------------------------------------------------------------

UNKNOWN = (
    f_varint(20, 2**64 - 1)
    + f_fixed64(21)
    + f_fixed32(22)
    + f_bytes(23, b"\xff\xfe not a message")
    + f_varint(2**29 - 1, 1)  # the largest field number
)


def hand_profile(extra: bytes) -> bytes:
    """One of every message, with ``extra`` appended to each message's fields."""
    value_type = f_varint(1, 1) + f_varint(2, 2) + extra
    label = f_varint(1, 1) + f_varint(2, 2) + f_varint(3, -3) + f_varint(4, 1) + extra
    sample = f_bytes(1, packed([1, 2**64 - 1])) + f_bytes(2, packed([-(2**63)])) + f_bytes(3, label) + extra
    mapping = b"".join(f_varint(n, n * 1000) for n in range(1, 11)) + extra
    line = f_varint(1, 1) + f_varint(2, -42) + extra
    location = f_varint(1, 1) + f_varint(2, 1) + f_varint(3, 0x401000) + f_bytes(4, line) + f_bytes(4, line)
    location += f_varint(5, 1) + extra
    function = f_varint(1, 1) + f_varint(2, 1) + f_varint(3, 2) + f_varint(4, 0) + f_varint(5, -7) + extra
    return (
        f_bytes(1, value_type)
        + f_bytes(2, sample)
        + f_bytes(3, mapping)
        + f_bytes(4, location)
        + f_bytes(5, function)
        + f_bytes(6, b"")
        + f_bytes(6, "héllo".encode())
        + f_bytes(6, b"ns")
        + b"".join(f_varint(n, -n) for n in (7, 8, 9, 10, 12, 14))
        + f_bytes(11, value_type)
        + f_bytes(13, packed([2, -1]))
        + extra
    )


def test_unknown_fields_of_every_wire_type_are_skipped_at_every_level() -> None:
    clean = both_backends(hand_profile(b""))
    assert_same(both_backends(hand_profile(UNKNOWN)), clean)
    assert_matches_message(clean, message(hand_profile(b"")))
    assert clean.strings == ["", "héllo", "ns"]
    assert clean.sample_locs.tolist() == [1, 2**64 - 1]
    assert clean.sample_values.tolist() == [-(2**63)]
    assert clean.label_num.tolist() == [-3]
    assert clean.mapping_id.tolist() == [1000]
    assert clean.mapping_filename.tolist() == [5000]
    assert clean.mapping_build_id.tolist() == [6000]
    assert clean.location_line_offsets.tolist() == [0, 2]
    assert clean.line_line.tolist() == [-42, -42]
    assert clean.function_start_line.tolist() == [-7]
    assert (clean.drop_frames, clean.keep_frames, clean.time_nanos) == (-7, -8, -9)
    assert (clean.duration_nanos, clean.period, clean.default_sample_type) == (-10, -12, -14)
    assert clean.comment.tolist() == [2, -1]


def test_empty_input_is_an_empty_profile() -> None:
    cols = both_backends(b"")
    assert cols.strings == []
    assert cols.sample_loc_offsets.tolist() == [0]
    assert cols.location_line_offsets.tolist() == [0]
    assert len(cols.sample_locs) == 0
    assert not cols.has_period_type


def test_empty_repeated_and_messages() -> None:
    raw = f_bytes(2, b"") + f_bytes(2, f_bytes(1, b"") + f_bytes(2, b"")) + f_bytes(4, b"") + f_bytes(13, b"")
    cols = both_backends(raw)
    assert cols.sample_loc_offsets.tolist() == [0, 0, 0]
    assert cols.location_id.tolist() == [0]
    assert cols.location_line_offsets.tolist() == [0, 0]


def test_a_repeated_singular_field_keeps_its_last_value() -> None:
    raw = f_varint(12, 5) + f_bytes(5, f_varint(1, 3) + f_varint(1, 4)) + f_varint(12, -7)
    cols = both_backends(raw)
    assert cols.period == -7
    assert cols.function_id.tolist() == [4]


def test_a_repeated_period_type_merges_field_by_field() -> None:
    cols = both_backends(f_bytes(11, f_varint(1, 3) + f_varint(2, 4)) + f_bytes(11, f_varint(1, 9)))
    assert (cols.has_period_type, cols.period_type_type, cols.period_type_unit) == (True, 9, 4)
    empty = both_backends(f_bytes(11, b""))
    assert (empty.has_period_type, empty.period_type_type, empty.period_type_unit) == (True, 0, 0)


def test_varint_bits_past_64_are_dropped_as_upb_does() -> None:
    raw = f_bytes(13, b"\xff" * 9 + b"\x7f") + tag(12, 0) + b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x7e"
    cols = both_backends(raw)
    assert cols.comment.tolist() == [-1]
    assert cols.period == 1


@needs_native
def test_invalid_utf8_is_replaced_natively_but_rejected_by_upb() -> None:
    # A documented divergence: Go does not promise UTF-8, so the C decoder
    # replaces bad bytes; upb enforces proto3's UTF-8 rule for `string` fields.
    raw = f_bytes(6, b"") + f_bytes(6, b"bad \xff\xfe bytes")
    assert parse_columns_native(raw).strings == ["", "bad \ufffd\ufffd bytes"]
    with pytest.raises(ParseError, match=r"^parsing profile: "):
        parse_columns_python(raw)


@needs_native
def test_native_accepts_any_contiguous_buffer() -> None:
    raw = RAW["cpu.pb.gz"]
    expected = wire_parse(raw)
    assert wire_parse(bytearray(raw)) == expected
    assert wire_parse(memoryview(raw)) == expected
    with pytest.raises(TypeError):
        _wire.parse("not bytes")  # type: ignore[arg-type]


MALFORMED = [
    (tag(12, 0), "truncated varint at offset 1"),
    (tag(12, 0) + b"\x80\x80\x80", "truncated varint at offset 1"),
    (tag(12, 0) + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes at offset 1"),
    (b"\x80", "truncated varint at offset 0"),
    (f_bytes(13, b"\x80"), "truncated varint at offset 2"),
    (b"\x12\x05\x08", "length runs past the end of its message at offset 1"),
    # A length of 2^64 - 1 in an unknown field: malformed, not "longer than the limit" (found by fuzzing).
    (b"\x92\x08" + b"\xff" * 9 + b"\x01", "length runs past the end of its message at offset 2"),
    # The label's length fits in the input but not in its sample.
    (b"\x12\x03\x1a\x05\x08" + f_varint(12, 1) * 3, "length runs past the end of its message at offset 3"),
    (tag(1, 3), "unsupported group wire type at offset 0"),
    (tag(100, 3) + tag(100, 4), "unsupported group wire type at offset 0"),
    (f_varint(12, 1) + tag(1, 4), "unsupported group wire type at offset 2"),
    (tag(20, 6), "invalid wire type at offset 0"),
    (tag(20, 7), "invalid wire type at offset 0"),
    (b"\x00", "invalid field number 0 at offset 0"),
    (b"\xe0\x80\x80\x80\x80\x00", "invalid tag at offset 0"),  # field 12 in 6 bytes
    (varint(1 << 32 | 0x60), "invalid tag at offset 0"),  # more than 32 bits
    (tag(20, 1) + b"\x00" * 7, "truncated fixed-width field at offset 0"),
    (tag(20, 5) + b"\x00" * 3, "truncated fixed-width field at offset 0"),
    (f_varint(2, 1), "wire type 0 for field 2 of Profile (expected 2) at offset 0"),
    (f_bytes(12, b"\x01"), "wire type 2 for field 12 of Profile (expected 0) at offset 0"),
    (f_bytes(6, b"") + f_varint(6, 1), "wire type 0 for field 6 of Profile (expected 2) at offset 2"),
    (f_bytes(2, f_fixed64(1)), "wire type 1 for field 1 of Sample (expected 0 or 2) at offset 2"),
    (f_bytes(2, f_fixed32(2)), "wire type 5 for field 2 of Sample (expected 0 or 2) at offset 2"),
    (f_bytes(3, f_bytes(7, b"")), "wire type 2 for field 7 of Mapping (expected 0) at offset 2"),
    (f_bytes(4, f_varint(4, 1)), "wire type 0 for field 4 of Location (expected 2) at offset 2"),
    (f_bytes(4, f_bytes(4, f_fixed64(2))), "wire type 1 for field 2 of Line (expected 0) at offset 4"),
    (f_bytes(2, f_bytes(3, f_bytes(1, b""))), "wire type 2 for field 1 of Label (expected 0) at offset 4"),
    (f_bytes(11, f_fixed32(1)), "wire type 5 for field 1 of ValueType (expected 0) at offset 2"),
    (f_fixed64(13), "wire type 1 for field 13 of Profile (expected 0 or 2) at offset 0"),
]


@needs_native
@pytest.mark.parametrize(("raw", "problem"), MALFORMED, ids=[problem for _, problem in MALFORMED])
def test_malformed_wire_data_names_the_problem_and_offset(raw: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}$"):
        _wire.parse(raw)
    with pytest.raises(ParseError) as info:
        parse_columns_native(raw)
    assert str(info.value) == f"parsing profile: {problem}"
    # A byte at a time, as a slow inflater might hand it over: the same problem at the same offset.
    assert fed_in_pieces(raw, 1) == problem


@pytest.mark.parametrize("raw", [tag(12, 0), b"\x12\x05\x08", tag(20, 7), b"\x00"])
def test_fallback_raises_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError, match=r"^parsing profile: not a protobuf message"):
        parse_columns_python(raw)


@needs_native
def test_failed_and_successful_parses_release_all_memory() -> None:
    raw = RAW["cpu.pb.gz"]
    # Cut points throughout the capture fail at every stage, with columns and strings half built.
    inputs = [raw[:cut] for cut in range(1, len(raw), 97)] + [raw, *(bad for bad, _ in MALFORMED)]

    def run_all() -> None:
        for data in inputs:
            with contextlib.suppress(ValueError):
                _wire.parse(data)

    tracemalloc.start()
    try:
        run_all()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            run_all()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # One leaked column buffer per parse would be over 2 KB x 1000 parses.
    assert grown < 64 * 1024


# --- fuzzing ----------------------------------------------------------------------------


def fed_in_pieces(raw: bytes, size: int) -> dict[str, object] | str:
    """``raw`` given to a Parser ``size`` bytes at a time: its columns, or its error's message."""
    parser = _wire.Parser()
    try:
        for start in range(0, len(raw), size):
            parser.feed(raw[start : start + size])
        result = parser.finish()
    except ValueError as exc:
        return str(exc)
    return {key: bytes(value) if isinstance(value, _wire.Column) else value for key, value in result.items()}


def check_hostile(raw: bytes) -> None:
    """The C decoder returns or raises ValueError; when it returns, upb agrees or rejects bad UTF-8."""
    # A bytes object carries a hidden trailing NUL, which would hide a one-byte
    # overread from AddressSanitizer; numpy allocates exactly len(raw) bytes.
    exact = np.frombuffer(raw, dtype=np.uint8).copy().data
    in_pieces = fed_in_pieces(raw, 7 if len(raw) < 20_000 else 4096)
    try:
        wire = wire_parse(exact)
    except ValueError as exc:
        assert " at offset " in str(exc)
        with pytest.raises(ValueError, match=f"^{re.escape(str(exc))}$"):
            _wire.parse(raw)
        # Streamed, the same input fails the same way, at the same offset.
        assert in_pieces == str(exc)
        return
    assert wire_parse(raw) == wire
    assert in_pieces == wire
    native = parse_columns_native(raw)
    try:
        fallback = parse_columns_python(raw)
    except ParseError:
        # The one way upb rejects what the C decoder accepts: a string that is
        # not valid UTF-8 (the C decoder replaces its bad bytes with U+FFFD).
        # Other divergences go the other way (upb keeps a known field sent with
        # the wrong wire type, or a group, as unknown; the C decoder rejects it).
        assert any("\ufffd" in s for s in native.strings)
        return
    assert_same(native, fallback)


@st.composite
def mutated(draw: st.DrawFn, names: Sequence[str]) -> bytes:
    raw = bytearray(RAW[draw(st.sampled_from(names))])
    for _ in range(draw(st.integers(1, 6))):
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        operation = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if operation == "flip":
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set":
            raw[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif operation == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=11))
        elif operation == "delete":
            del raw[at : at + draw(st.integers(1, 11))]
        else:
            del raw[at:]
    return bytes(raw)


def message_soup() -> st.SearchStrategy[bytes]:
    """Random fields nested like a profile: real field numbers, any wire type, random payloads."""
    leaf = st.one_of(
        st.builds(f_varint, st.integers(1, 16), st.one_of(I64, U64)),
        st.builds(tag, st.integers(0, 16), st.integers(0, 7)),
        st.binary(max_size=6),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5).map(b"".join),
            st.builds(f_bytes, st.integers(1, 16), inner),
        ),
        max_leaves=20,
    )


@needs_native
@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(raw: bytes) -> None:
    check_hostile(raw)


@needs_native
@settings(max_examples=1000, deadline=None)
@given(message_soup())
def test_fuzz_structured_bytes(raw: bytes) -> None:
    check_hostile(raw)


@needs_native
@settings(max_examples=1000, deadline=None)
@given(mutated(SMALL))
def test_fuzz_mutated_captures(raw: bytes) -> None:
    check_hostile(raw)


@needs_native
@settings(max_examples=60, deadline=None)
@given(mutated(["big_cpu.pb.gz"]))
def test_fuzz_mutated_big_capture(raw: bytes) -> None:
    check_hostile(raw)
