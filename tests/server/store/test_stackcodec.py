"""The stack segment codec on its own: what goes in comes out, and bytes that are not a whole segment are refused.

Small hand-made segments, each for one edge: no nodes, a chain, ids and
frames past 32 bits, gaps left by garbage collection; then segments broken in
each way the header and the compressed stream can break, and nodes that break
the tree's order rules refused at encode. Segments of the earlier versions
(zlib, zstd) still read.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from isal import isal_zlib

from server.store._treeindex import columns
from server.store.stackcodec import CorruptSegment, Segment, decode, encode


def segment(ids: list[int], parents: list[int], frames: list[int], recursive: list[bool] | None = None) -> Segment:
    return Segment(
        np.array(ids, dtype=np.int64),
        np.array(parents, dtype=np.int64),
        np.array(frames, dtype=np.int64),
        np.array(recursive if recursive is not None else [False] * len(ids), dtype=bool),
    )


def planes(values: list[int]) -> bytes:
    """A 32-bit column as the codec lays it out: byte planes."""
    return np.array(values, dtype="<u4").view(np.uint8).reshape(-1, 4).T.tobytes()


def inflate(body: bytes) -> bytes:
    """A version 3 segment's columns: raw deflate."""
    inflater = isal_zlib.decompressobj(-15)
    columns = inflater.decompress(body)
    assert inflater.eof and not inflater.unused_data
    return columns


def assert_round_trip(original: Segment) -> None:
    back = decode(encode(original))
    for name in ("ids", "parents", "frames"):
        column = getattr(back, name)
        assert column.dtype == np.int64
        assert column.tolist() == getattr(original, name).tolist()
    assert back.recursive.dtype == np.bool_
    assert back.recursive.tolist() == original.recursive.tolist()


def test_empty_segment() -> None:
    assert_round_trip(segment([], [], []))


def test_chain_and_siblings() -> None:
    recursive = [False, False, True, False, True]
    assert_round_trip(segment([5, 6, 7, 8, 9], [0, 5, 6, 5, 8], [10, 11, 10, 12, 10], recursive))


def test_gaps_and_wide_values() -> None:
    big = 2**40
    assert_round_trip(segment([3, 9, big, big + 1], [0, 3, 0, big], [2**33, 1, 7, 2**35], [True, False, False, True]))


def reference_columns(original: Segment) -> bytes:
    """The column bytes as the layout defines them, built with numpy a column at a time."""
    ids = original.ids
    parts = []
    for values in (np.diff(ids, prepend=ids[:1]), ids - original.parents, original.frames):
        narrow = values.size == 0 or (int(values.min()) >= 0 and int(values.max()) < 2**32)
        width = 4 if narrow else 8
        parts.append(values.astype("<u4" if narrow else "<i8").view(np.uint8).reshape(-1, width).T.tobytes())
    return b"".join(parts) + np.packbits(original.recursive).tobytes()


@st.composite
def segments(draw: st.DrawFn) -> Segment:
    """Increasing ids with gaps (some past 32 bits apart), parents anywhere below, frames of any width and sign."""
    gaps = draw(st.lists(st.one_of(st.integers(1, 3), st.integers(1, 2**40)), max_size=40))
    ids = np.cumsum(np.array([draw(st.integers(1, 2**20)), *gaps], dtype=np.int64))
    parents = [draw(st.integers(0, int(node) - 1)) for node in ids]
    frames = draw(
        st.lists(st.one_of(st.integers(0, 5000), st.integers(-(2**62), 2**62)), min_size=ids.size, max_size=ids.size)
    )
    recursive = draw(st.lists(st.booleans(), min_size=ids.size, max_size=ids.size))
    return segment(ids.tolist(), parents, frames, recursive)


@given(segments())
def test_column_bytes_follow_the_layout(original: Segment) -> None:
    data = encode(original)
    assert data[2] == 3
    assert inflate(data[16:]) == reference_columns(original)
    assert_round_trip(original)


def test_columns_refuses_columns_of_different_lengths() -> None:
    ids = np.array([1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="one length"):
        columns(ids, ids[:1] - 1, ids, np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match="one length"):
        columns(ids, ids - 1, ids, np.zeros(3, dtype=bool))
    with pytest.raises(TypeError, match="64-bit"):
        columns(ids.astype(np.int32), ids - 1, ids, np.zeros(2, dtype=bool))


def test_many_nodes_compress_to_a_few_bytes_each() -> None:
    rng = np.random.default_rng(17)
    count = 50_000
    ids = np.arange(1000, 1000 + count, dtype=np.int64)
    parents = ids - 1
    parents[::40] = 0  # a new stack from the root every 40 frames
    frames = rng.integers(1, 3000, count)
    original = Segment(ids, parents, frames, np.zeros(count, dtype=bool))
    data = encode(original)
    assert_round_trip(original)
    # Uniform frames carry log2(2999) = 11.6 bits (1.44 bytes) each; ids and parents next to nothing. Deflate
    # stores 1.76 bytes a node here (zstd, version 2, stored 1.60): its Huffman codes are whole bits, and it
    # takes short matches in random bytes. On real churny segments the two differ by 1 % (docs/storage-history.md).
    assert len(data) < 1.8 * count


@pytest.mark.parametrize(
    ("ids", "parents", "message"),
    [
        ([2, 2], [0, 0], "increasing"),
        ([3, 2], [0, 0], "increasing"),
        ([0, 1], [0, 0], "increasing"),
        ([4, 5], [0, 5], "parent"),
        ([4, 5], [-1, 4], "parent"),
    ],
)
def test_encode_refuses_broken_order(ids: list[int], parents: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode(segment(ids, parents, [1] * len(ids)))


def test_refuses_short_header() -> None:
    with pytest.raises(CorruptSegment, match="shorter than its 16-byte header"):
        decode(b"SN\x01")


def test_refuses_other_magic_or_version() -> None:
    data = encode(segment([1], [0], [1]))
    with pytest.raises(CorruptSegment, match="not a Stackyard stack segment"):
        decode(b"SY" + data[2:])
    with pytest.raises(CorruptSegment, match="not a Stackyard stack segment"):
        decode(data[:2] + b"\x09" + data[3:])


def test_refuses_torn_stream() -> None:
    data = encode(segment(list(range(1, 200)), [0, *range(1, 199)], list(range(199))))
    with pytest.raises(CorruptSegment, match="do not decompress"):
        decode(data[:-5])


def test_refuses_count_that_disagrees_with_columns() -> None:
    data = encode(segment([1, 2, 3], [0, 1, 2], [4, 5, 6]))
    magic, version, flags, _count, first = struct.unpack_from("<2sBBIQ", data)
    with pytest.raises(CorruptSegment, match="header says 4 nodes"):
        decode(struct.pack("<2sBBIQ", magic, version, flags, 4, first) + data[16:])


def test_refuses_decoded_order_violations() -> None:
    header = struct.pack("<2sBBIQ", b"SN", 1, 0, 2, 10)
    ids_back = planes([0, 0])  # second id equal to the first
    columns = ids_back + planes([1, 1]) + planes([1, 1]) + b"\x00"
    with pytest.raises(CorruptSegment, match="not increasing"):
        decode(header + zlib.compress(columns))
    parent_above = planes([0, 1]) + planes([0, 11])  # the first node's parent would be -1
    columns = parent_above + planes([1, 1]) + b"\x00"
    with pytest.raises(CorruptSegment, match="parent is not below"):
        decode(header + zlib.compress(columns))


def test_refuses_bytes_after_the_stream() -> None:
    data = encode(segment([1, 2, 3], [0, 1, 2], [4, 5, 6]))
    with pytest.raises(CorruptSegment, match="cut short or too long"):
        decode(data + b"\x00")


@pytest.mark.parametrize("version", [1, 2])
def test_reads_segments_of_earlier_versions(version: int) -> None:
    """Segments are written as raw deflate (version 3); those written with zlib (version 1) and with zstd
    (version 2) still read the same."""
    original = segment([3, 4, 5, 9], [0, 3, 4, 3], [7, 8, 7, 2**33], [False, False, True, False])
    data = encode(original)
    magic, current, flags, count, first = struct.unpack_from("<2sBBIQ", data)
    assert current == 3
    columns = inflate(data[16:])
    body = zlib.compress(columns) if version == 1 else zstandard.ZstdCompressor().compress(columns)
    back = decode(struct.pack("<2sBBIQ", magic, version, flags, count, first) + body)
    assert back.ids.tolist() == original.ids.tolist() and back.frames.tolist() == original.frames.tolist()
    assert back.parents.tolist() == original.parents.tolist()
    assert back.recursive.tolist() == original.recursive.tolist()


def test_refuses_a_version_2_segment_whose_frame_size_disagrees() -> None:
    columns = inflate(encode(segment([1, 2], [0, 1], [4, 5]))[16:])
    header = struct.pack("<2sBBIQ", b"SN", 2, 0, 3, 1)
    with pytest.raises(CorruptSegment, match="header says 3 nodes"):
        decode(header + zstandard.ZstdCompressor().compress(columns))
