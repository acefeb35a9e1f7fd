"""The sample blob codec on its own: what goes in comes out, and bytes that are not a whole blob are refused.

Small hand-made arrays, each for one edge: no rows, one row, keys past 32
bits, negative and extreme values, many value columns, columns that are
multiples of each other; rollup blobs with their per-node table; blobs of the
older zlib layout (version 2), which stay readable; then blobs broken in each
way the header, the length and the compressed frames can break.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from server.store.blob import CorruptBlob, decode, decode_nodes, encode, encode_v2, has_nodes
from server.store.samples import SampleArrays

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


def arrays(keys: list[int], values: list[list[int]], columns: int | None = None) -> SampleArrays:
    width = columns if columns is not None else (len(values[0]) if values else 1)
    return SampleArrays(np.array(keys, dtype=np.int64), np.array(values, dtype=np.int64).reshape(len(keys), width))


def same(back: SampleArrays, original: SampleArrays) -> None:
    assert back.keys.dtype == np.int64 and back.values.dtype == np.int64
    assert back.values.shape == original.values.shape
    assert back.keys.tolist() == original.keys.tolist()
    assert back.values.tolist() == original.values.tolist()


def round_trip(original: SampleArrays) -> SampleArrays:
    back = decode(encode(original))
    same(back, original)
    same(decode(encode_v2(original)), original)  # the older layout reads back the same
    assert decode_nodes(encode(original)) is None
    return back


@pytest.mark.parametrize(
    "original",
    [
        pytest.param(arrays([], [], columns=2), id="no rows"),
        pytest.param(arrays([], [], columns=0), id="no rows, no columns"),
        pytest.param(arrays([7], [[42]]), id="one row"),
        pytest.param(arrays([1, 2, 3, 1000], [[5, -5], [0, 0], [1, 2], [3, 4]]), id="two columns"),
        pytest.param(arrays([3, 2**32 - 1], [[1], [2]]), id="largest 32-bit key"),
        pytest.param(arrays([5, 2**32, 2**40 + 3], [[1], [2], [3]]), id="keys past 32 bits"),
        pytest.param(arrays([1, 2], [[I64_MAX, I64_MIN], [-1, 1]]), id="extreme values"),
        pytest.param(arrays(list(range(1, 9)), [list(range(k, k + 6)) for k in range(8)]), id="six columns"),
        pytest.param(arrays([1, 5, 9], [[1, 10**7], [3, 3 * 10**7], [2, 2 * 10**7]]), id="cpu: count and ns"),
        pytest.param(arrays([1, 5, 9], [[2, -4], [4, -8], [-6, 12]]), id="a column a negative multiple of another"),
        pytest.param(arrays([1, 5, 9], [[0, 0], [0, 0], [0, 0]]), id="all zero"),
        pytest.param(arrays([1, 2], [[I64_MIN, I64_MIN], [0, 0]]), id="the int64 without a negation"),
        pytest.param(arrays([1, 2], [[I64_MAX, -I64_MAX], [I64_MAX, I64_MAX]]), id="a scale of 2**63 - 1"),
    ],
)
def test_round_trip(original: SampleArrays) -> None:
    round_trip(original)


def test_round_trip_of_many_rows_compresses_the_sorted_keys() -> None:
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(1, 50_000, 5_000))
    values = rng.integers(0, 1_000, (keys.shape[0], 2))
    data = encode(SampleArrays(keys, values))
    round_trip(SampleArrays(keys, values))
    # Deltas of sorted keys are small numbers: far fewer bytes than the 4 per key of the raw column.
    key_bytes_alone = len(encode(SampleArrays(keys, values[:, :0])))
    assert key_bytes_alone < keys.shape[0] * 4 / 2
    assert len(data) < keys.shape[0] * (4 + 2 * 8)


def test_keys_in_any_order_read_back_in_that_order() -> None:
    """Writers sort their keys, but the layout does not depend on it (a delta below zero wraps back)."""
    original = arrays([9, 4, 2**40, 7], [[1], [2], [3], [4]])
    same(decode(encode(original)), original)


def test_cpu_values_cost_one_small_column() -> None:
    """``cpu/nanoseconds`` are ``samples/count`` times the period: stored once, at a scale, a byte per row."""
    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(1, 5_000, 1_000))
    counts = rng.integers(1, 30, keys.shape[0])
    both = np.stack([counts, counts * 10_000_000], axis=1)
    one = encode(SampleArrays(keys, counts.reshape(-1, 1)))
    assert len(encode(SampleArrays(keys, both))) <= len(one) + 16
    assert len(encode(SampleArrays(keys, both))) < len(encode_v2(SampleArrays(keys, both))) / 2


def test_a_rollup_blob_carries_its_node_table() -> None:
    keyed = arrays([3, 4, 8, 20], [[1, 10], [2, 20], [3, 30], [4, 40]])
    per_node = arrays([7, 11], [[3, 30], [7, 70]])
    data = encode(keyed, per_node)
    assert has_nodes(data) and not has_nodes(encode(keyed)) and not has_nodes(encode_v2(keyed))
    same(decode(data), keyed)
    nodes = decode_nodes(data)
    assert nodes is not None
    same(nodes, per_node)
    empty = encode(arrays([], [], columns=2), arrays([], [], columns=2))
    empty_nodes = decode_nodes(empty)
    assert empty_nodes is not None and len(empty_nodes) == 0 and empty_nodes.values.shape == (0, 2)


def test_a_node_table_must_have_the_key_tables_columns() -> None:
    with pytest.raises(ValueError, match="needs 2 value columns, not 1"):
        encode(arrays([1], [[1, 2]]), arrays([1], [[1]]))


def test_decoded_arrays_are_writable_copies() -> None:
    back = decode(encode(arrays([1, 2], [[3], [4]])))
    back.values[0, 0] = 99  # a merge may sum into them; a read-only view of the zlib output would refuse
    assert back.values.tolist() == [[99], [4]]


GOOD = encode(arrays([1, 2, 3], [[10, 20], [30, 40], [50, 60]]))
OLD = encode_v2(arrays([1, 2, 3], [[10, 20], [30, 40], [50, 60]]))
ROLLUP = encode(arrays([1, 2, 3], [[10, 20], [30, 40], [50, 60]]), arrays([5, 6], [[40, 60], [50, 60]]))
HEADER = struct.Struct("<2sBBII")
NODES = 2


def _with_header(of: bytes = GOOD, **fields: int | bytes) -> bytes:
    magic, version, columns, rows, flags = HEADER.unpack_from(of)
    values = {"magic": magic, "version": version, "columns": columns, "rows": rows, "flags": flags, **fields}
    packed = HEADER.pack(values["magic"], values["version"], values["columns"], values["rows"], values["flags"])
    return packed + of[HEADER.size :]


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _with_length(length: int) -> bytes:
    return ROLLUP[: HEADER.size] + struct.pack("<I", length) + ROLLUP[HEADER.size + 4 :]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(b"", "shorter than its 12-byte header", id="empty"),
        pytest.param(GOOD[:7], "shorter than its 12-byte header", id="half a header"),
        pytest.param(_with_header(magic=b"PK"), "not a Stackyard sample blob", id="another format"),
        pytest.param(_with_header(version=1), "unsupported version", id="old version"),
        pytest.param(_with_header(version=4), "unsupported version", id="newer version"),
        pytest.param(GOOD[:-3], "do not decompress", id="truncated frame"),
        pytest.param(GOOD[: HEADER.size], "do not decompress", id="header alone"),
        pytest.param(_flipped(GOOD, HEADER.size + 4), "do not decompress|bytes of columns", id="flipped byte"),
        pytest.param(_with_header(rows=4), "header says 4 rows of 2 values", id="more rows than stored"),
        pytest.param(_with_header(rows=2), "header says 2 rows of 2 values", id="fewer rows than stored"),
        pytest.param(_with_header(rows=0), "more than its header's rows can need", id="no rows said"),
        pytest.param(_with_header(columns=3), "shorter than the descriptor of 3 columns", id="more columns"),
        pytest.param(_with_header(flags=NODES), "length says|do not decompress", id="node flag without a table"),
        pytest.param(_with_length(10_000), "shorter than its key table's length says", id="length past the end"),
        pytest.param(_with_length(5), "do not decompress", id="length cuts the key table"),
        pytest.param(ROLLUP[: HEADER.size + 2], "shorter than its key table's length says", id="half a length"),
        pytest.param(OLD[:-3], "do not decompress", id="old: truncated stream"),
        pytest.param(_flipped(OLD, HEADER.size + 4), "do not decompress", id="old: flipped byte"),
        pytest.param(_with_header(OLD, rows=4), "header says 4 rows of 2 values", id="old: more rows than stored"),
        pytest.param(_with_header(OLD, rows=2), "header says 2 rows of 2 values", id="old: fewer rows than stored"),
        pytest.param(_with_header(OLD, flags=0), "header says 3 rows of 2 values", id="old: wrong key width"),
    ],
)
def test_corrupt_blobs_are_refused_naming_the_problem(data: bytes, says: str) -> None:
    with pytest.raises(CorruptBlob, match=says):
        decode(data)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(ROLLUP[:-3], "do not decompress", id="truncated node frame"),
        pytest.param(_with_header(ROLLUP, rows=1), "more than its 1 sample keys|larger than 1 rows", id="more nodes"),
        pytest.param(_with_length(10_000), "shorter than its key table's length says", id="length past the end"),
        pytest.param(ROLLUP[: HEADER.size + 2], "shorter than its key table's length says", id="half a length"),
    ],
)
def test_corrupt_node_tables_are_refused_naming_the_problem(data: bytes, says: str) -> None:
    with pytest.raises(CorruptBlob, match=says):
        decode_nodes(data)


def test_a_refusal_is_a_value_error() -> None:
    """Callers that already catch ValueError for a bad blob (``stackyard check``) keep working."""
    assert issubclass(CorruptBlob, ValueError)
    with pytest.raises(ValueError):
        decode(zlib.compress(b"not a blob"))
