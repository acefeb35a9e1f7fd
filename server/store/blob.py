"""The byte layout of one profile's samples (:class:`~server.store.samples.SampleArrays`) in the database.

One decoder for every reader (queries, rollups, export, garbage collection,
``stackyard check``); the version byte tells the layouts apart, and every
version ever written stays readable.

Version 3 (written now): a 12-byte header (magic ``SY``, version, number of
value columns, row count, flags), then one zstd frame holding a *table*:

- a descriptor: the id column's byte-plane count, then per value column a
  source (its own planes, or "the reduced values of column j"), a plane
  count and a scale;
- sample-key ids as deltas after sorting, as byte planes (every value's low
  byte, then the next...; only as many planes as the largest delta needs);
- each value column divided by its scale (the greatest common divisor of the
  column: a CPU profile's ``cpu/nanoseconds`` are whole multiples of the
  sampling period), zigzag-coded, as byte planes. A column whose reduced
  values equal an earlier column's is not stored again: a CPU profile's
  ``samples/count`` and ``cpu/nanoseconds`` are the same numbers at scales 1
  and the period, so it stores one small column where version 2 stored two
  of 64-bit ints.

Rollups may carry a second table (flag ``NODES``), in its own zstd frame
after the first (whose length then follows the header): the same values
summed per stack leaf node, so a flame graph over a long range sums node
arrays instead of resolving every sample key (:func:`decode_nodes`, read
without decompressing the key table).

Version 2 (read only): the header, then one zlib stream of key deltas (32
or 64 bits) and each value column as little-endian int64.

A blob that does not hold what its header says (torn, truncated, another
format) is refused with :class:`CorruptBlob` naming what is wrong, never read
as fewer or shifted samples; the header's counts bound what is decompressed.
"""

from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
import numpy.typing as npt
import zstandard

from server.store.samples import SampleArrays

IntArray = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]

_HEADER = struct.Struct("<2sBBII")
_LENGTH = struct.Struct("<I")
_COLUMN = struct.Struct("<BBq")  # source, planes, scale
_MAGIC = b"SY"
_ZLIB_COLUMNS = 2
_TABLES = 3
_VERSION = _TABLES
_FLAG_KEYS_32 = 1  # version 2: key deltas as 32-bit ints
_FLAG_NODES = 2  # version 3: a second table, summed per stack node
_OWN = 255  # a column stored with its own planes
#: zstd levels: a profile's table is a few KB. Level 19 made it 1-7 % smaller than level 12 (530 bytes
#: against 536 for a steady capture's, 678 against 728 for `big_cpu`'s) for 3-4 times the time (0.28 ms
#: against 0.08; 1.1 ms against 0.35), a large part of what ingest spends on a known profile. Past 32 KB
#: (a big heap profile) high levels cost tens of milliseconds. Rollups ask for :data:`ROLLUP_LEVEL`: a week
#: of them at level 19 took twice the CPU to build for 9 % fewer bytes.
_SMALL_LEVEL = 12
_LARGE_LEVEL = 3
_SMALL = 32 * 1024
ROLLUP_LEVEL = 3
_I64_MIN = np.iinfo(np.int64).min


class CorruptBlob(ValueError):
    """Stored bytes that are not a whole sample blob."""


class _Codecs(threading.local):
    """One zstd compressor and decompressor per thread (neither may be shared between threads at once):
    making one costs more than a small blob's whole decompression (30 µs against 7)."""

    def __init__(self) -> None:
        self.compressors: dict[int, zstandard.ZstdCompressor] = {}
        self.decompressor = zstandard.ZstdDecompressor()

    def compressor(self, level: int) -> zstandard.ZstdCompressor:
        found = self.compressors.get(level)
        if found is None:
            found = self.compressors[level] = zstandard.ZstdCompressor(
                level=level, write_checksum=False, write_dict_id=False
            )
        return found


_codecs = _Codecs()


def encode(arrays: SampleArrays, nodes: SampleArrays | None = None, level: int | None = None) -> bytes:
    """The blob of ``arrays`` (rows sorted by key); ``nodes`` adds the per-node table a rollup carries.

    ``nodes`` must have as many value columns as ``arrays``. ``level`` is zstd's (default: by size).
    """
    rows = len(arrays)
    columns = arrays.values.shape[1] if arrays.values.ndim == 2 else 0
    first = _compress(_table(arrays.keys, arrays.values.reshape(rows, columns)), level)
    if nodes is None:
        return _HEADER.pack(_MAGIC, _TABLES, columns, rows, 0) + first
    node_values = nodes.values.reshape(len(nodes), -1) if len(nodes) else nodes.values.reshape(0, columns)
    if node_values.shape[1] != columns:
        raise ValueError(f"a node table needs {columns} value columns, not {node_values.shape[1]}")
    second = _LENGTH.pack(len(nodes)) + _table(nodes.keys, node_values)
    return (
        _HEADER.pack(_MAGIC, _TABLES, columns, rows, _FLAG_NODES)
        + _LENGTH.pack(len(first))
        + first
        + _compress(second, level)
    )


def _compress(table: bytes, level: int | None) -> bytes:
    chosen = level if level is not None else (_SMALL_LEVEL if len(table) <= _SMALL else _LARGE_LEVEL)
    compressed: bytes = _codecs.compressor(chosen).compress(table)
    return compressed


def decode(data: bytes) -> SampleArrays:
    """The sample-key table of any blob version."""
    version, columns, rows, flags = _header(data)
    if version == _ZLIB_COLUMNS:
        return _decode_v2(data, columns, rows, flags)
    start = _HEADER.size + (_LENGTH.size if flags & _FLAG_NODES else 0)
    end = start + _LENGTH.unpack_from(data, _HEADER.size)[0] if flags & _FLAG_NODES else len(data)
    if end > len(data):
        raise CorruptBlob("sample blob is shorter than its key table's length says")
    raw = _decompress(data[start:end], _table_size(rows, columns))
    return _untable(raw, 0, rows, columns)


def decode_nodes(data: bytes) -> SampleArrays | None:
    """The per-node table of a rollup blob (rows sorted by stack node id), or None when the blob has none."""
    version, columns, rows, flags = _header(data)
    if version == _ZLIB_COLUMNS or not flags & _FLAG_NODES:
        return None
    if len(data) < _HEADER.size + _LENGTH.size:
        raise CorruptBlob("sample blob is shorter than its key table's length says")
    start = _HEADER.size + _LENGTH.size + _LENGTH.unpack_from(data, _HEADER.size)[0]
    if start > len(data):
        raise CorruptBlob("sample blob is shorter than its key table's length says")
    body = data[start:]
    size = _frame_size(body)
    # The node table has at most as many rows as the key table (keys map to nodes); that bounds its size.
    if size > _LENGTH.size + _table_size(rows, columns):
        raise CorruptBlob(f"sample blob's node table of {size} bytes is larger than {rows} rows can need")
    raw = _decompress(body, size)
    node_rows = _LENGTH.unpack_from(raw)[0]
    if node_rows > rows:
        raise CorruptBlob(f"sample blob's node table has {node_rows} rows, more than its {rows} sample keys")
    return _untable(raw, _LENGTH.size, node_rows, columns)


def has_nodes(data: bytes) -> bool:
    """Whether the blob carries a per-node table (cheap: the header only)."""
    version, _, _, flags = _header(data)
    return version == _TABLES and bool(flags & _FLAG_NODES)


# -- the table ---------------------------------------------------------------------------------------------------


def _planes_needed(values: U64Array) -> int:
    return (int(values.max()).bit_length() + 7) // 8 if values.size else 0


def _planes(values: U64Array, count: int) -> bytes:
    """The low ``count`` byte planes of ``values`` (little-endian), plane by plane."""
    if count == 0:
        return b""
    as_bytes = np.ascontiguousarray(values, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return np.ascontiguousarray(as_bytes[:, :count].T).tobytes()


def _unplanes(raw: bytes, offset: int, rows: int, count: int) -> U64Array:
    full = np.zeros((rows, 8), dtype=np.uint8)
    if count:
        full[:, :count] = np.frombuffer(raw, np.uint8, rows * count, offset).reshape(count, rows).T
    return full.view("<u8").reshape(rows).astype(np.uint64)


def _zigzag(values: IntArray) -> U64Array:
    shifted = (values.astype(np.int64) << np.int64(1)) ^ (values.astype(np.int64) >> np.int64(63))
    return shifted.view(np.uint64)


def _unzigzag(values: U64Array) -> IntArray:
    halved = (values >> np.uint64(1)).view(np.int64)
    sign = -(values & np.uint64(1)).view(np.int64)
    return halved ^ sign


def _scale(column: IntArray) -> int:
    """The column's greatest common divisor (1 when it is all zero or holds the one int64 without a negation)."""
    if column.size == 0 or bool((column == _I64_MIN).any()):
        return 1
    divisor = int(np.gcd.reduce(np.abs(column)))
    return divisor or 1


def _table(ids: IntArray, values: IntArray) -> bytes:
    """Descriptor, then the id deltas' planes, then each stored column's planes (see the module docstring)."""
    deltas = np.diff(ids.astype(np.int64), prepend=np.int64(0)).view(np.uint64)  # wraps back on cumsum
    id_planes = _planes_needed(deltas)
    descriptor = [bytes([id_planes])]
    body = [_planes(deltas, id_planes)]
    reduced: list[IntArray] = []
    for c in range(values.shape[1]):
        column = values[:, c]
        scale = _scale(column)
        mine = column // scale
        source = next((j for j, earlier in enumerate(reduced) if np.array_equal(earlier, mine)), _OWN)
        reduced.append(mine)
        if source != _OWN:
            descriptor.append(_COLUMN.pack(source, 0, scale))
            continue
        zigzagged = _zigzag(mine)
        count = _planes_needed(zigzagged)
        descriptor.append(_COLUMN.pack(_OWN, count, scale))
        body.append(_planes(zigzagged, count))
    return b"".join(descriptor + body)


def _table_size(rows: int, columns: int) -> int:
    """The most bytes a table of ``rows`` can hold: its descriptor and every column at full width."""
    return 1 + columns * _COLUMN.size + rows * 8 * (columns + 1)


def _untable(raw: bytes, offset: int, rows: int, columns: int) -> SampleArrays:
    end_of_descriptor = offset + 1 + columns * _COLUMN.size
    if len(raw) < end_of_descriptor:
        raise CorruptBlob(f"sample blob table is shorter than the descriptor of {columns} columns")
    id_planes = raw[offset]
    described = [_COLUMN.unpack_from(raw, offset + 1 + c * _COLUMN.size) for c in range(columns)]
    if id_planes > 8 or any(planes > 8 or scale < 1 for _, planes, scale in described):
        raise CorruptBlob("sample blob table describes columns wider than 64 bits or with a scale below 1")
    if any(source != _OWN and (source >= c or planes) for c, (source, planes, _) in enumerate(described)):
        raise CorruptBlob("sample blob table has a column that refers to a later column")
    expected = end_of_descriptor + rows * (id_planes + sum(planes for _, planes, _ in described))
    if len(raw) != expected:
        raise CorruptBlob(
            f"sample blob table holds {len(raw) - offset} bytes; its header says {rows} rows of {columns} values"
        )
    keys = np.cumsum(_unplanes(raw, end_of_descriptor, rows, id_planes)).view(np.int64)
    at = end_of_descriptor + rows * id_planes
    reduced: list[IntArray] = []
    values = np.empty((rows, columns), dtype=np.int64)
    for c, (source, planes, scale) in enumerate(described):
        if source == _OWN:
            mine = _unzigzag(_unplanes(raw, at, rows, planes))
            at += rows * planes
        else:
            mine = reduced[source]
        reduced.append(mine)
        values[:, c] = mine * np.int64(scale) if scale != 1 else mine
    return SampleArrays(keys.astype(np.int64), values)


# -- frames and the header ---------------------------------------------------------------------------------------


def _header(data: bytes) -> tuple[int, int, int, int]:
    if len(data) < _HEADER.size:
        raise CorruptBlob(f"sample blob of {len(data)} bytes is shorter than its {_HEADER.size}-byte header")
    magic, version, columns, rows, flags = _HEADER.unpack_from(data)
    if magic != _MAGIC or version not in (_ZLIB_COLUMNS, _TABLES):
        raise CorruptBlob("not a Stackyard sample blob (or one of an unsupported version)")
    if version == _TABLES and flags & _FLAG_NODES and len(data) < _HEADER.size + _LENGTH.size:
        raise CorruptBlob("sample blob is shorter than its key table's length says")
    return version, columns, rows, flags


def _frame_size(body: bytes) -> int:
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise CorruptBlob(f"sample blob columns do not decompress: {exc}") from None
    if size < 0:
        raise CorruptBlob("sample blob columns do not decompress: the frame does not say its size")
    return int(size)


def _decompress(body: bytes, at_most: int) -> bytes:
    """One zstd frame's bytes, refused unread when its stated size passes ``at_most`` (the header bounds memory)."""
    size = _frame_size(body)
    if size > at_most:
        raise CorruptBlob(f"sample blob holds {size} bytes of columns, more than its header's rows can need")
    try:
        raw: bytes = _codecs.decompressor.decompress(body)
    except zstandard.ZstdError as exc:
        raise CorruptBlob(f"sample blob columns do not decompress: {exc}") from None
    return raw


def _decode_v2(data: bytes, columns: int, rows: int, flags: int) -> SampleArrays:
    key_width = 4 if flags & _FLAG_KEYS_32 else 8
    expected = rows * (key_width + 8 * columns)
    try:
        # Sized to what the header promises: one allocation, no regrowing, for the query's hot path.
        raw = zlib.decompress(data[_HEADER.size :], bufsize=max(expected, 1))
    except zlib.error as exc:
        raise CorruptBlob(f"sample blob columns do not decompress: {exc}") from None
    if len(raw) != expected:
        raise CorruptBlob(
            f"sample blob holds {len(raw)} bytes of columns; its header says {rows} rows of {columns} values"
        )
    if key_width == 4:
        keys = np.cumsum(np.frombuffer(raw, "<u4", rows, 0).astype(np.int64))
    else:
        keys = np.cumsum(np.frombuffer(raw, "<i8", rows, 0))
    values = np.frombuffer(raw, "<i8", rows * columns, key_width * rows).reshape(columns, rows).T.astype(np.int64)
    return SampleArrays(keys, values)


def encode_v2(arrays: SampleArrays, level: int = 6) -> bytes:
    """The version-2 layout, for tests and migrations that must produce what older releases stored."""
    rows = len(arrays)
    columns = arrays.values.shape[1] if arrays.values.ndim == 2 else 0
    flags = 0
    deltas = np.diff(arrays.keys, prepend=np.int64(0))
    parts: list[bytes] = []
    if rows == 0 or int(arrays.keys.max()) < 2**32:
        flags |= _FLAG_KEYS_32
        parts.append(deltas.astype("<u4").tobytes())
    else:
        parts.append(deltas.astype("<i8").tobytes())
    parts.append(np.ascontiguousarray(arrays.values.T, dtype="<i8").tobytes())
    return _HEADER.pack(_MAGIC, _ZLIB_COLUMNS, columns, rows, flags) + zlib.compress(b"".join(parts), level)
