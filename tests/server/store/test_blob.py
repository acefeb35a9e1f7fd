"""The sample blob codec on its own: what goes in comes out, and bytes that are not a whole blob are refused.

Small hand-made arrays, each for one edge: no rows, one row, keys past 32
bits, negative and extreme values, many value columns; then blobs broken in
each way the header and the zlib stream can break.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from server.store.blob import CorruptBlob, decode, encode
from server.store.samples import SampleArrays

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


def arrays(keys: list[int], values: list[list[int]], columns: int | None = None) -> SampleArrays:
    width = columns if columns is not None else (len(values[0]) if values else 1)
    return SampleArrays(np.array(keys, dtype=np.int64), np.array(values, dtype=np.int64).reshape(len(keys), width))


def round_trip(original: SampleArrays) -> SampleArrays:
    back = decode(encode(original))
    assert back.keys.dtype == np.int64 and back.values.dtype == np.int64
    assert back.values.shape == original.values.shape
    assert back.keys.tolist() == original.keys.tolist()
    assert back.values.tolist() == original.values.tolist()
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


def test_decoded_arrays_are_writable_copies() -> None:
    back = decode(encode(arrays([1, 2], [[3], [4]])))
    back.values[0, 0] = 99  # a merge may sum into them; a read-only view of the zlib output would refuse
    assert back.values.tolist() == [[99], [4]]


GOOD = encode(arrays([1, 2, 3], [[10, 20], [30, 40], [50, 60]]))
HEADER = struct.Struct("<2sBBII")


def _with_header(**fields: int | bytes) -> bytes:
    magic, version, columns, rows, flags = HEADER.unpack_from(GOOD)
    values = {"magic": magic, "version": version, "columns": columns, "rows": rows, "flags": flags, **fields}
    packed = HEADER.pack(values["magic"], values["version"], values["columns"], values["rows"], values["flags"])
    return packed + GOOD[HEADER.size :]


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        pytest.param(b"", "shorter than its 12-byte header", id="empty"),
        pytest.param(GOOD[:7], "shorter than its 12-byte header", id="half a header"),
        pytest.param(_with_header(magic=b"PK"), "not a Stackyard sample blob", id="another format"),
        pytest.param(_with_header(version=1), "unsupported version", id="old version"),
        pytest.param(GOOD[:-3], "do not decompress", id="truncated stream"),
        pytest.param(GOOD[: HEADER.size], "do not decompress", id="header alone"),
        pytest.param(_flipped(GOOD, HEADER.size + 4), "do not decompress", id="flipped byte"),
        pytest.param(_with_header(rows=4), "header says 4 rows of 2 values", id="more rows than stored"),
        pytest.param(_with_header(rows=2), "header says 2 rows of 2 values", id="fewer rows than stored"),
        pytest.param(_with_header(columns=3), "header says 3 rows of 3 values", id="more columns than stored"),
        pytest.param(_with_header(flags=0), "header says 3 rows of 2 values", id="wrong key width"),
    ],
)
def test_corrupt_blobs_are_refused_naming_the_problem(data: bytes, says: str) -> None:
    with pytest.raises(CorruptBlob, match=says):
        decode(data)


def test_a_refusal_is_a_value_error() -> None:
    """Callers that already catch ValueError for a bad blob (``stackyard check``) keep working."""
    assert issubclass(CorruptBlob, ValueError)
    with pytest.raises(ValueError):
        decode(zlib.compress(b"not a blob"))
