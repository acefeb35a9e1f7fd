"""A pprof profile as flat numpy columns, decoded in one pass.

Walking a profile through upb message objects creates a Python wrapper for
every Sample, Location and Line, which costs 15-30 ms on a production
profile. The C extension :mod:`server.pprof._wire` walks the wire format once
and hands back packed 64-bit columns that numpy wraps without copying, so the
code that aggregates stacks can work on whole arrays.

Repeated fields of repeated messages are flattened with prefix offsets: the
location ids of sample ``i`` are ``sample_locs[sample_loc_offsets[i]:sample_loc_offsets[i + 1]]``
(leaf first, as in the file), and likewise for sample values, sample labels
and the lines of each location. Every other repeated message becomes one
entry per record in each of its columns.

Only the wire format is checked here. String indices, ids and value counts are
returned exactly as sent, possibly dangling or duplicated: validating them is
the job of the module that resolves them.

Parsing is incremental and bounded (:mod:`server.pprof.limits`): a
:class:`ColumnParser` takes the inflated bytes as they come and refuses at the
first record past a limit, so neither the input nor its columns are ever held
in full before a hostile profile is refused.

The arrays are read-only in both backends: the native ones are views of the
extension's read-only buffers, and the fallback's are frozen to match, so code
that works with one backend cannot break on the other by writing into a column.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Protocol, TypeAlias, TypeVar, cast

import numpy as np
from google.protobuf.message import DecodeError
from numpy.typing import NDArray
from typing_extensions import Buffer

from server.pprof import profile_pb2
from server.pprof.errors import DecodeLimitError, ParseError
from server.pprof.limits import DecodeLimits

Int64Array: TypeAlias = NDArray[np.int64]
UInt64Array: TypeAlias = NDArray[np.uint64]

# The extension emits little-endian words on every host; naming the byte order
# keeps the columns right on a big-endian machine, where astype() swaps them.
_WIRE_INT64: Final = np.dtype("<i8")
_WIRE_UINT64: Final = np.dtype("<u8")

_T = TypeVar("_T")
_A = TypeVar("_A", bound=np.ndarray[Any, Any])

DEFAULT_LIMITS: Final = DecodeLimits()


@dataclass(slots=True, frozen=True, eq=False)
class ProfileColumns:
    """The fields of ``perftools.profiles.Profile`` as parallel arrays.

    ``eq=False`` because ``==`` over numpy arrays has no single truth value;
    compare columns with ``numpy.array_equal`` instead.
    """

    strings: list[str]
    sample_type: Int64Array  # (type, unit) pairs, flattened
    sample_loc_offsets: Int64Array  # n_samples + 1
    sample_locs: UInt64Array
    sample_value_offsets: Int64Array  # n_samples + 1
    sample_values: Int64Array
    sample_label_offsets: Int64Array  # n_samples + 1, into the label_* columns
    label_key: Int64Array
    label_str: Int64Array
    label_num: Int64Array
    label_num_unit: Int64Array
    mapping_id: UInt64Array
    mapping_filename: Int64Array
    mapping_build_id: Int64Array
    mapping_memory_start: UInt64Array
    mapping_memory_limit: UInt64Array
    mapping_file_offset: UInt64Array
    location_id: UInt64Array
    location_mapping_id: UInt64Array
    location_address: UInt64Array
    location_line_offsets: Int64Array  # n_locations + 1, into the line_* columns
    line_function_id: UInt64Array
    line_line: Int64Array
    function_id: UInt64Array
    function_name: Int64Array
    function_system_name: Int64Array
    function_filename: Int64Array
    function_start_line: Int64Array
    comment: Int64Array
    drop_frames: int
    keep_frames: int
    time_nanos: int
    duration_nanos: int
    period: int
    period_type_type: int
    period_type_unit: int
    default_sample_type: int
    has_period_type: bool
    strings_with_nul: int = 0
    """Strings of the table that held a NUL, now U+FFFD (PostgreSQL's text cannot store NUL)."""


def _load_native() -> ModuleType | None:
    try:
        from server.pprof import _wire
    except ImportError:
        return None
    return _wire


_native: Final = _load_native()

NATIVE: Final[bool] = _native is not None
"""Whether the C decoder was built; when it was not, the fallback does the same job slower."""


class ColumnParser(Protocol):
    """One profile's bytes fed as they arrive (inflated, not gzip), then its columns.

    ``feed`` raises :class:`~server.pprof.errors.ParseError` on malformed wire
    data and :class:`~server.pprof.errors.DecodeLimitError` at the first record
    past a limit, so a hostile input is refused after the bytes that pass the
    limit, not after all of them.
    """

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> ProfileColumns: ...


def column_parser(limits: DecodeLimits = DEFAULT_LIMITS, native: bool | None = None) -> ColumnParser:
    """The C decoder's incremental parser when it is built, else the fallback's (``native`` forces one)."""
    if native is None:
        native = _native is not None
    if native:
        if _native is None:
            raise RuntimeError("server.pprof._wire is not built")
        return _NativeParser(_native, limits)
    return _FallbackParser(limits)


def parse_columns(raw: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> ProfileColumns:
    """Decode raw (already decompressed) pprof bytes into columns.

    Raises :class:`~server.pprof.errors.ParseError` if the bytes are not a
    well-formed protobuf ``Profile``, and :class:`~server.pprof.errors.DecodeLimitError`
    if they pass a limit.
    """
    parser = column_parser(limits)
    parser.feed(raw)
    return parser.finish()


def parse_columns_native(raw: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> ProfileColumns:
    """:func:`parse_columns` forced onto the C decoder, for tests and benchmarks.

    Raises ``RuntimeError`` when the extension is not built.
    """
    parser = column_parser(limits, native=True)
    parser.feed(raw)
    return parser.finish()


class _NativeParser:
    def __init__(self, wire: ModuleType, limits: DecodeLimits) -> None:
        self._wire = wire
        self._limits = limits
        self._parser = wire.Parser(
            samples=limits.samples,
            locations=limits.locations,
            sample_types=limits.sample_types,
            memory=limits.memory,
            record=limits.record,
        )

    def feed(self, data: bytes) -> None:
        self._call(self._parser.feed, data)

    def finish(self) -> ProfileColumns:
        wire: dict[str, object] = self._call(self._parser.finish)
        return _columns_from_wire(wire)

    def _call(self, method: Callable[..., _T], *args: object) -> _T:
        try:
            return method(*args)
        except self._wire.LimitError as exc:
            _text, name, limit = exc.args
            raise DecodeLimitError(name, limit, self._limits.describe(name)) from None
        except ValueError as exc:
            raise ParseError(str(exc)) from None


def _columns_from_wire(wire: dict[str, object]) -> ProfileColumns:
    def i64(name: str) -> Int64Array:
        return np.frombuffer(_buffer(wire, name), dtype=_WIRE_INT64).astype(np.int64, copy=False)

    def u64(name: str) -> UInt64Array:
        return np.frombuffer(_buffer(wire, name), dtype=_WIRE_UINT64).astype(np.uint64, copy=False)

    def scalar(name: str) -> int:
        return _get(wire, name, int)

    return ProfileColumns(
        strings=_get(wire, "strings", list),
        sample_type=i64("sample_type"),
        sample_loc_offsets=i64("sample_loc_offsets"),
        sample_locs=u64("sample_locs"),
        sample_value_offsets=i64("sample_value_offsets"),
        sample_values=i64("sample_values"),
        sample_label_offsets=i64("sample_label_offsets"),
        label_key=i64("label_key"),
        label_str=i64("label_str"),
        label_num=i64("label_num"),
        label_num_unit=i64("label_num_unit"),
        mapping_id=u64("mapping_id"),
        mapping_filename=i64("mapping_filename"),
        mapping_build_id=i64("mapping_build_id"),
        mapping_memory_start=u64("mapping_memory_start"),
        mapping_memory_limit=u64("mapping_memory_limit"),
        mapping_file_offset=u64("mapping_file_offset"),
        location_id=u64("location_id"),
        location_mapping_id=u64("location_mapping_id"),
        location_address=u64("location_address"),
        location_line_offsets=i64("location_line_offsets"),
        line_function_id=u64("line_function_id"),
        line_line=i64("line_line"),
        function_id=u64("function_id"),
        function_name=i64("function_name"),
        function_system_name=i64("function_system_name"),
        function_filename=i64("function_filename"),
        function_start_line=i64("function_start_line"),
        comment=i64("comment"),
        drop_frames=scalar("drop_frames"),
        keep_frames=scalar("keep_frames"),
        time_nanos=scalar("time_nanos"),
        duration_nanos=scalar("duration_nanos"),
        period=scalar("period"),
        period_type_type=scalar("period_type_type"),
        period_type_unit=scalar("period_type_unit"),
        default_sample_type=scalar("default_sample_type"),
        has_period_type=_get(wire, "has_period_type", bool),
        strings_with_nul=scalar("strings_with_nul"),
    )


def _buffer(wire: Mapping[str, object], key: str) -> memoryview:
    """A column the extension returned (a ``Column``, which numpy wraps in place)."""
    return memoryview(cast(Buffer, wire[key]))


def _get(wire: Mapping[str, object], key: str, kind: type[_T]) -> _T:
    """Narrows the extension's ``dict[str, object]`` for the type checker, and
    turns a mismatch between the C and Python halves into a clear error."""
    value = wire[key]
    if not isinstance(value, kind):
        raise TypeError(f"_wire.parse returned {type(value).__name__} for {key!r}")
    return value


# --- pure-Python fallback ---------------------------------------------------


def parse_columns_python(raw: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> ProfileColumns:
    """:func:`parse_columns` over upb messages, for installs without the extension.

    Produces the same columns as the C decoder on every input both accept.
    They differ on rejection only: upb refuses a string table entry that is
    not valid UTF-8 (the C decoder replaces the bad bytes, because Go does not
    promise UTF-8), and upb keeps a known field sent with the wrong wire type
    as an unknown field (the C decoder rejects it as corrupt). The memory
    budget is estimated from the wire bytes before upb reads them (see
    :class:`_FallbackParser`), an upper bound of what the C decoder counts, so
    the fallback may refuse a profile near the budget that the C decoder takes.
    """
    parser = _FallbackParser(limits)
    parser.feed(raw)
    return parser.finish()


# What the C decoder's columns take per top-level record at least (its fixed
# words), and per payload byte at most (each byte may start a varint that
# becomes a word; a sample's 2-byte empty label becomes four). Strings cost
# their bytes and about a str object each. Field numbers as in profile.proto.
_FIXED_COST = {1: 16, 2: 24, 3: 48, 4: 32, 5: 40, 6: 64, 13: 8}
_BYTE_COST = {2: 16, 4: 8, 6: 1, 13: 8}


class _FallbackParser:
    """Counts top-level records as bytes arrive, the same limits as the C decoder, then lets upb parse.

    upb parses one whole buffer, so the counting is done first on the wire:
    only tags and lengths are read (payloads are skipped), each sample,
    location and sample type is counted, and the memory the columns would
    take is estimated from the payload sizes. A record past a limit stops the
    input there, before upb builds anything.
    """

    def __init__(self, limits: DecodeLimits) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scanned = 0
        self._counts = {1: 0, 2: 0, 4: 0}  # sample types, samples, locations
        self._memory = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        self._scan()

    def finish(self) -> ProfileColumns:
        raw, self._buffer = bytes(self._buffer), bytearray()
        return _parse_upb(raw)

    def _scan(self) -> None:
        buffer, position, end = self._buffer, self._scanned, len(self._buffer)
        limits = self._limits
        while position < end:
            field = _top_level_field(buffer, position, end)
            if field is None:
                break  # its tag or length is cut off by the end of the bytes so far, or malformed (upb says so)
            number, size, following = field
            if size > limits.record:
                raise DecodeLimitError("profile_record_bytes", limits.record, limits.describe("profile_record_bytes"))
            if following > end:
                break
            position = following
            self._memory += _FIXED_COST.get(number, 0) + _BYTE_COST.get(number, 0) * size
            if number in self._counts:
                self._counts[number] += 1
                self._check(number)
            if self._memory > limits.memory:
                raise DecodeLimitError("profile_decoded_bytes", limits.memory, limits.describe("profile_decoded_bytes"))
        self._scanned = position

    def _check(self, number: int) -> None:
        name, limit = {
            1: ("profile_sample_types", self._limits.sample_types),
            2: ("profile_samples", self._limits.samples),
            4: ("profile_locations", self._limits.locations),
        }[number]
        if self._counts[number] > limit:
            raise DecodeLimitError(name, limit, self._limits.describe(name))


def _top_level_field(buffer: bytearray, position: int, end: int) -> tuple[int, int, int] | None:
    """(field number, payload length, where the next field starts) of the field at ``position``.

    None when its tag or length is not all there yet, or is malformed. The
    next field may start past ``end``: the payload has not all arrived. The
    payload length is 0 for fields that are not length-delimited.
    """
    tag, position = _read_varint(buffer, position, end)
    if tag is None:
        return None
    wire, size = tag & 7, 0
    if wire == 0:
        value, position = _read_varint(buffer, position, end)
        if value is None:
            return None
    elif wire in (1, 5):
        position += 8 if wire == 1 else 4
    elif wire == 2:
        length, position = _read_varint(buffer, position, end)
        if length is None:
            return None
        size, position = length, position + length
    else:
        return None
    return tag >> 3, size, position


def _read_varint(buffer: bytearray, position: int, end: int) -> tuple[int | None, int]:
    """A varint at ``position``, or None when the bytes end inside it or it is longer than 10 bytes."""
    value = shift = 0
    while position < end and shift < 70:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, position
        shift += 7
    return None, position


def _parse_upb(raw: bytes) -> ProfileColumns:
    message = profile_pb2.Profile()
    try:
        message.ParseFromString(raw)
    except DecodeError as exc:
        raise ParseError(f"not a protobuf message ({exc})") from None

    strings = list(message.string_table)
    with_nul = [index for index, text in enumerate(strings) if "\0" in text]
    for index in with_nul:
        strings[index] = strings[index].replace("\0", "\ufffd")  # as the C decoder does
    samples = message.sample
    labels = [label for sample in samples for label in sample.label]
    locations = message.location
    lines = [line for location in locations for line in location.line]
    mappings = message.mapping
    functions = message.function
    return ProfileColumns(
        strings=strings,
        sample_type=_int64(itertools.chain.from_iterable((vt.type, vt.unit) for vt in message.sample_type)),
        sample_loc_offsets=_offsets(len(s.location_id) for s in samples),
        sample_locs=_uint64(itertools.chain.from_iterable(s.location_id for s in samples)),
        sample_value_offsets=_offsets(len(s.value) for s in samples),
        sample_values=_int64(itertools.chain.from_iterable(s.value for s in samples)),
        sample_label_offsets=_offsets(len(s.label) for s in samples),
        label_key=_int64(label.key for label in labels),
        label_str=_int64(label.str for label in labels),
        label_num=_int64(label.num for label in labels),
        label_num_unit=_int64(label.num_unit for label in labels),
        mapping_id=_uint64(m.id for m in mappings),
        mapping_filename=_int64(m.filename for m in mappings),
        mapping_build_id=_int64(m.build_id for m in mappings),
        mapping_memory_start=_uint64(m.memory_start for m in mappings),
        mapping_memory_limit=_uint64(m.memory_limit for m in mappings),
        mapping_file_offset=_uint64(m.file_offset for m in mappings),
        location_id=_uint64(loc.id for loc in locations),
        location_mapping_id=_uint64(loc.mapping_id for loc in locations),
        location_address=_uint64(loc.address for loc in locations),
        location_line_offsets=_offsets(len(loc.line) for loc in locations),
        line_function_id=_uint64(line.function_id for line in lines),
        line_line=_int64(line.line for line in lines),
        function_id=_uint64(f.id for f in functions),
        function_name=_int64(f.name for f in functions),
        function_system_name=_int64(f.system_name for f in functions),
        function_filename=_int64(f.filename for f in functions),
        function_start_line=_int64(f.start_line for f in functions),
        comment=_int64(message.comment),
        drop_frames=message.drop_frames,
        keep_frames=message.keep_frames,
        time_nanos=message.time_nanos,
        duration_nanos=message.duration_nanos,
        period=message.period,
        period_type_type=message.period_type.type,
        period_type_unit=message.period_type.unit,
        default_sample_type=message.default_sample_type,
        has_period_type=message.HasField("period_type"),
        strings_with_nul=len(with_nul),
    )


def _int64(values: Iterable[int]) -> Int64Array:
    return _read_only(np.fromiter(values, dtype=np.int64))


def _uint64(values: Iterable[int]) -> UInt64Array:
    return _read_only(np.fromiter(values, dtype=np.uint64))


def _offsets(counts: Iterable[int]) -> Int64Array:
    lengths = np.fromiter(counts, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _read_only(offsets)


def _read_only(array: _A) -> _A:
    array.flags.writeable = False
    return array
