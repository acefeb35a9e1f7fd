"""Sample keys and their line vectors as segments: the bytes round-trip or are refused, one id per hash and
one vector per key with concurrent writers, nothing kept from a rolled-back append or appended after a
collection, and collection drops dead keys (and their vectors) but never the highest; on both databases."""

from __future__ import annotations

import random
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zstandard
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from server.pprof.decode import decode_columns
from server.pprof.frames import narrowest
from server.store import columncodec, linevectors
from server.store.appends import Appends, EpochMoved
from server.store.database import make_engine
from server.store.dedup import Dedup
from server.store.gc import collect_garbage
from server.store.linevectors import LineVectorTable
from server.store.repository import Store
from server.store.samplekeys import SampleKeyTable, by_node, concatenate, first_positions, read_segments
from server.store.stackcodec import CorruptSegment, deflate
from tests.support.tools import DATA

IntArray = npt.NDArray[np.int64]


def test_columns_round_trip_whatever_their_values() -> None:
    rng = np.random.default_rng(5)
    ids = np.cumsum(rng.integers(1, 4, 500)) + 10
    columns = [
        rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64),  # hashes: every bit
        np.cumsum(rng.integers(0, 3, 500)),  # nodes numbered together: small steps
        np.zeros(500, dtype=np.int64),  # no label set: no byte at all
        np.where(rng.random(500) < 0.5, -1, rng.integers(0, 2**40, 500)),  # -1 or a large value: any integer
    ]
    data = columncodec.encode(b"SK", ids, columns)
    got_ids, got = columncodec.decode(b"SK", 4, data)
    assert got_ids.tolist() == ids.tolist()
    assert [c.tolist() for c in got] == [c.tolist() for c in columns]
    empty_ids, empty = columncodec.decode(
        b"LF", 2, columncodec.encode(b"LF", np.zeros(0, dtype=np.int64), [np.zeros(0, dtype=np.int64)] * 2)
    )
    assert empty_ids.size == 0 and all(c.size == 0 for c in empty)
    with pytest.raises(ValueError, match="increasing"):
        columncodec.encode(b"SK", np.array([3, 3]), [np.array([1, 2])])


def test_first_positions_find_each_hash_first_occurrence() -> None:
    rng = np.random.default_rng(11)
    hashes = rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64)
    hashes[rng.integers(0, 300, 80)] = hashes[rng.integers(0, 300, 80)]  # repeats, some far apart
    at = np.sort(rng.choice(300, 200, replace=False))
    first = first_positions(hashes, at)
    given = set(at.tolist())
    for p in range(300):
        if p in given:
            expected = next(int(q) for q in at if hashes[q] == hashes[p])
            assert first[p] == expected
        else:
            assert first[p] == -1
    unique_first = at[first[at] == at]  # what np.unique(return_index=True) picks, in position order
    _, reference = np.unique(hashes[at], return_index=True)
    assert unique_first.tolist() == sorted(at[reference].tolist())


@pytest.mark.parametrize(
    ("node_top", "labelset_top"),
    [(2**20, 9), (2**31 + 5, 3), (50, 2**33)],  # packed into one key, and too big for it (lexsort's path)
)
def test_by_node_orders_as_lexsort_does(node_top: int, labelset_top: int) -> None:
    rng = np.random.default_rng(node_top % 1000)
    node = rng.integers(0, node_top, 2_000, dtype=np.int64)
    node[::3] = node[0]  # ties on node, broken by label set, then kept in the order given
    labelset = rng.integers(0, labelset_top, 2_000, dtype=np.int64)
    labelset[::5] = 0
    assert by_node(node, labelset).tolist() == np.lexsort((labelset, node)).tolist()
    empty = np.zeros(0, dtype=np.int64)
    assert by_node(empty, empty).size == 0


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda d: d[:10], "shorter than"),
        (lambda d: b"XX" + d[2:], "not a SK segment"),
        (lambda d: d[:3] + bytes([3]) + d[4:], "columns, not 4"),
        (lambda d: d[:4] + (10**6).to_bytes(4, "little") + d[8:], "its header says"),
        (lambda d: d[:-3], "decompress"),
    ],
)
def test_damaged_segments_are_refused(damage: Any, words: str) -> None:
    data = columncodec.encode(b"SK", np.arange(1, 101), [np.arange(100)] * 4)
    with pytest.raises(CorruptSegment, match=words):
        columncodec.decode(b"SK", 4, damage(data))


def _vector_of(hashes: IntArray) -> tuple[IntArray, IntArray]:
    """Each hash's made-up vector, ``hash % 5`` frames of value ``hash % 89``: offsets and values."""
    lengths = hashes % 5
    offsets = np.zeros(hashes.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, np.repeat(hashes % 89, lengths)


def test_concurrent_writers_give_one_id_per_hash_and_one_vector_per_key(database_url: str) -> None:
    """Writers with caches of their own (replicas, worker processes) append overlapping new keys, each with its
    line vector in the key's transaction."""
    shared = random.Random(3).sample(range(-(10**12), 10**12), 1200)
    results: dict[int, dict[int, int]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(number: int) -> None:
        engine = make_engine(database_url)
        try:
            keys, vectors = SampleKeyTable(engine), LineVectorTable(engine)
            mine = random.Random(number).sample(shared, 900)
            start.wait()
            for part in range(0, len(mine), 150):
                hashes = np.array(mine[part : part + 150], dtype=np.int64)

                def appended(ids: IntArray, at: IntArray, appends: Appends, hashes: IntArray = hashes) -> None:
                    vectors.append(ids, *_vector_of(hashes[at]), appends)

                ids = keys.create(hashes, hashes % 97, np.zeros_like(hashes), appended=appended)
                results.setdefault(number, {}).update(zip(hashes.tolist(), ids.tolist(), strict=True))
        except BaseException as exc:  # reported below: a thread's exception would vanish
            failures.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    by_value: dict[Any, set[int]] = {}
    for mapping in results.values():
        for value, given in mapping.items():
            by_value.setdefault(value, set()).add(given)
    assert all(len(ids) == 1 for ids in by_value.values())  # every writer got the same id
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = concatenate(read_segments(conn))
            vectors = linevectors.concatenate(linevectors.read_segments(conn))
    finally:
        engine.dispose()
    assert len(set(stored.hashes.tolist())) == len(stored) == len({h for r in results.values() for h in r})
    assert len(set(stored.ids.tolist())) == len(stored)
    assert bool((stored.nodes == stored.hashes % 97).all())
    # One vector a key, written by whichever writer stored the key, with that key's values.
    assert sorted(vectors.keys.tolist()) == sorted(stored.ids.tolist())
    assert len(set(vectors.ids.tolist())) == len(vectors)
    hash_of = dict(zip(stored.ids.tolist(), stored.hashes.tolist(), strict=True))
    for i, key in enumerate(vectors.keys.tolist()):
        _, values = _vector_of(np.array([hash_of[key]]))
        got = vectors.values[vectors.offsets[i] : vectors.offsets[i + 1]]
        assert got.tolist() == values.tolist()


def test_a_rolled_back_append_hands_out_no_id(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        keys = SampleKeyTable(engine)
        first = keys.create(np.array([11, 12]), np.array([1, 2]), np.array([0, 0]))

        def fail(_conn: Any) -> None:
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

        event.listen(engine, "commit", fail)
        try:
            with pytest.raises(OperationalError):
                keys.create(np.array([13]), np.array([3]), np.array([0]))
        finally:
            event.remove(engine, "commit", fail)
        assert keys.lookup(np.array([11, 12, 13])).tolist() == [*first.tolist(), -1]
        again = keys.create(np.array([13]), np.array([3]), np.array([0]))
        assert again.tolist() == [int(first.max()) + 1]  # the id nothing ever committed
    finally:
        engine.dispose()


def test_no_key_is_appended_once_a_collection_ran(database_url: str) -> None:
    """A collection may have dropped the nodes a new key points at: its writer resolves it again instead."""
    engine = make_engine(database_url)
    try:
        keys = SampleKeyTable(engine)
        with pytest.raises(EpochMoved):
            keys.create(np.array([21]), np.array([1]), np.array([0]), epoch=7)  # the database is at epoch 0
        assert keys.lookup(np.array([21])).tolist() == [-1]
        with engine.connect() as conn:
            assert read_segments(conn) == []
    finally:
        engine.dispose()


def test_collection_drops_dead_keys_and_their_vectors_keeping_the_highest(database_url: str) -> None:
    """Keys seen again without a vector (stored before line data) get one; a collection with no profile left
    drops every key but the highest, and every vector but that key's newest and the highest."""
    store = Store.from_url(database_url)
    try:
        dedup = Dedup(store.engine)
        cpu = dedup.sample_key_ids(decode_columns((DATA / "cpu.pb.gz").read_bytes()))
        distinct = len(set(cpu.tolist()))
        with store.engine.connect() as conn:
            written = linevectors.concatenate(linevectors.read_segments(conn))
        assert sorted(written.keys.tolist()) == sorted(set(cpu.tolist()))  # with the keys, one each
        linevectors.forget(store.engine)
        fresh = Dedup(store.engine)  # sees the keys again: their vectors are written beside them
        assert fresh.sample_key_ids(decode_columns((DATA / "cpu.pb.gz").read_bytes())).tolist() == cpu.tolist()
        with store.engine.connect() as conn:
            filled = linevectors.concatenate(linevectors.read_segments(conn))
        assert sorted(filled.keys.tolist()) == sorted(set(cpu.tolist()))
        order = np.argsort(written.keys)
        again = np.argsort(filled.keys)
        for i, j in zip(order.tolist(), again.tolist(), strict=True):  # the same vectors as at first
            first = written.values[written.offsets[i] : written.offsets[i + 1]]
            assert first.tolist() == filled.values[filled.offsets[j] : filled.offsets[j + 1]].tolist()
        removed = collect_garbage(store)  # no profile references any key
        assert removed["sample_keys"] == distinct - 1
        assert removed["line_vectors"] == distinct - 1
        with store.engine.connect() as conn:
            left = concatenate(read_segments(conn))
            vectors = linevectors.concatenate(linevectors.read_segments(conn))
        assert left.ids.tolist() == [int(cpu.max())]
        assert vectors.ids.tolist() == [int(filled.ids.max())]  # the highest, whatever its key
        after = SampleKeyTable(store.engine).create(np.array([99]), np.array([0]), np.array([0]))
        assert after.tolist() == [int(cpu.max()) + 1]
    finally:
        store.close()


def test_vectors_of_a_transaction_are_cached_only_once_committed(database_url: str) -> None:
    """A rolled-back append leaves no vector behind, in memory or stored, and its ids are handed out again."""
    engine = make_engine(database_url)
    try:
        vectors = LineVectorTable(engine)
        vectors.append(np.array([1, 2]), np.array([0, 2, 3]), np.array([10, 12, 14]))
        with pytest.raises(RuntimeError), Appends(engine) as appends:
            vectors.append(np.array([3]), np.array([0, 1]), np.array([40]), appends)
            assert vectors.lacking(np.array([1, 2, 3])).tolist() == [False, False, True]
            raise RuntimeError("rolled back")
        assert vectors.lacking(np.array([1, 2, 3])).tolist() == [False, False, True]
        with Appends(engine) as appends:
            vectors.append(np.array([3]), np.array([0, 1]), np.array([41]), appends)
        fresh = LineVectorTable(engine)
        for table in (vectors, fresh):
            assert table.lacking(np.array([1, 2, 3])).tolist() == [False, False, False]
            values, offsets = table.vectors(np.array([3, 1, 2]))
            assert values.tolist() == [41, 10, 12, 14] and offsets.tolist() == [0, 1, 3, 4]
        with engine.connect() as conn:
            assert [part.ids.tolist() for part in linevectors.read_segments(conn)] == [[1, 2], [3]]
    finally:
        engine.dispose()


def test_own_vectors_stay_in_their_segment_until_a_query_reads_them(database_url: str) -> None:
    """A process keeps the values it appended in the segment's bytes until a query asks for them; keys count as
    having a vector at once, and a vector another writer stored meanwhile for the same key is the one kept."""
    engine = make_engine(database_url)
    try:
        mine, other = LineVectorTable(engine), LineVectorTable(engine)
        mine.append(np.array([1, 2]), np.array([0, 2, 3]), np.array([10, 12, 14]))
        mine.append(np.array([3]), np.array([0, 2]), np.array([30, 31]))
        assert len(mine._unread) == 2 and not bool(mine.lacking(np.array([1, 2, 3])).any())
        other.append(np.array([2]), np.array([0, 1]), np.array([12]))  # a fill of key 2 by another process
        mine.load()  # its catch-up reads the other's segment: key 2's vector is now in memory
        values, offsets = mine.vectors(np.array([3, 2]))
        assert values.tolist() == [30, 31, 12] and offsets.tolist() == [0, 2, 3]
        assert mine._unread == []  # both segments read: each had a key the query asked for still waiting
        values, offsets = mine.vectors(np.array([1, 2, 3]))
        assert values.tolist() == [10, 12, 12, 30, 31] and offsets.tolist() == [0, 2, 3, 5]
    finally:
        engine.dispose()


def test_a_copy_from_before_a_collection_takes_a_hash_stored_again_under_its_new_id(database_url: str) -> None:
    """Another process collects a dead key and later stores its hash again: a copy loaded before the collection
    reads the new segment on a query's catch-up and finds the hash under the new id, not the dropped one."""
    store = Store.from_url(database_url)
    try:
        stale = SampleKeyTable(store.engine)
        dropped = stale.create(np.array([11, -12]), np.array([0, 0]), np.array([0, 0]))
        highest = stale.create(np.array([13]), np.array([0]), np.array([0]))  # a collection keeps the highest
        assert collect_garbage(store)["sample_keys"] == 2
        again = SampleKeyTable(store.engine).create(np.array([-12]), np.array([0]), np.array([0]))
        assert int(again[0]) > int(highest[0]) > int(dropped.max())
        assert stale.lookup(np.array([11, -12, 13])).tolist() == [*dropped.tolist(), *highest.tolist()]
        stale.resolve(again)  # the query's catch-up
        assert stale.lookup(np.array([11, -12, 13])).tolist() == [int(dropped[0]), int(again[0]), int(highest[0])]
    finally:
        store.close()


@pytest.mark.parametrize("others_first", [False, True], ids=["alone", "after-another-writer"])
def test_keys_created_in_a_transaction_get_their_ids_whether_or_not_the_append_caught_up(
    database_url: str, others_first: bool
) -> None:
    """Inside a profile's transaction, create answers new keys from the rows it appends; known keys, those
    given twice, and (when another writer appended first) keys the catch-up read, from the index."""
    engine = make_engine(database_url)
    try:
        mine, other = SampleKeyTable(engine), SampleKeyTable(engine)
        known = mine.create(np.array([1, 2]), np.array([5, 5]), np.array([0, 0]))
        theirs = other.create(np.array([3, -4]), np.array([6, 6]), np.array([0, 0])) if others_first else None
        hashes = np.array([2, 3, -4, 7, 3, 2**62, 7, 1], dtype=np.int64)
        with Appends(engine) as appends:
            got = mine.create(hashes, np.arange(8), np.zeros(8, dtype=np.int64), appends=appends)
        assert got[0] == known[1] and got[7] == known[0]
        assert got[1] == got[4] and got[3] == got[6]
        if theirs is not None:
            assert got[1:3].tolist() == theirs.tolist()
        assert len(set(got.tolist())) == 6 and int(got.min()) > 0  # six distinct hashes
        assert mine.lookup(hashes).tolist() == got.tolist() == SampleKeyTable(engine).lookup(hashes).tolist()
    finally:
        engine.dispose()


def test_vector_values_past_32_bits_are_kept_whole(database_url: str) -> None:
    """Values are held as 16-bit integers while they fit; a line past 2**30 (a value past 2**31) or a negative one
    turns the column 64-bit, and every vector, before and after, reads back whole, here and in a fresh process."""
    engine = make_engine(database_url)
    try:
        vectors = LineVectorTable(engine)
        vectors.append(np.array([1]), np.array([0, 2]), np.array([10, 11]))
        vectors.append(np.array([2, 3]), np.array([0, 1, 3]), np.array([(1 << 40) << 1 | 1, -(1 << 33), 7]))
        vectors.append(np.array([4]), np.array([0, 1]), np.array([12]))
        for table in (vectors, LineVectorTable(engine)):
            assert not bool(table.lacking(np.array([1, 2, 3, 4])).any())
            values, offsets = table.vectors(np.array([2, 4, 1, 3]))
            assert values.tolist() == [(1 << 40) << 1 | 1, 12, 10, 11, -(1 << 33), 7]
            assert offsets.tolist() == [0, 1, 2, 4, 6]
    finally:
        engine.dispose()


@pytest.mark.parametrize("values", [[], [3, 255], [256, 7], [70000], [2**32], [-1, 5]])
def test_vector_segments_are_the_same_bytes_whatever_integer_type_the_values_come_in(values: list[int]) -> None:
    """Ingest hands the segment its values packed already (:func:`server.pprof.frames.frame_values`); decoding
    and garbage collection hand it 64-bit ones: both make the same bytes, which read back as the values."""
    wide = np.array(values, dtype=np.int64)
    ids = np.array([1, 2], dtype=np.int64)
    offsets = np.array([0, len(values) // 2, len(values)], dtype=np.int64)
    segment = linevectors.encode(linevectors.VectorRows(ids, np.array([4, 9]), offsets, wide))
    for given in (narrowest(wide), np.repeat(wide, 2)[::2]):  # packed, and a view that is not contiguous
        assert linevectors.encode(linevectors.VectorRows(ids, np.array([4, 9]), offsets, given)) == segment
    decoded = linevectors.decode(segment)
    assert decoded.values.dtype == np.int64
    assert decoded.values.tolist() == values
    assert segment[4 + int.from_bytes(segment[:4], "little")] == narrowest(wide).itemsize | linevectors.DEFLATED


def _vector_segment(values: list[int], body: bytes | None = None, codec: int = linevectors.DEFLATED) -> bytes:
    """A segment of two vectors holding ``values``: as ``encode`` writes it, or with its values' bytes and codec
    flag replaced (``body``: the compressed values of 16-bit ``values``)."""
    ids, offsets = np.array([1, 2], dtype=np.int64), np.array([0, 1, len(values)], dtype=np.int64)
    segment = linevectors.encode(linevectors.VectorRows(ids, np.array([4, 9]), offsets, np.array(values)))
    if body is None:
        return segment
    start = 4 + int.from_bytes(segment[:4], "little")
    return segment[:start] + bytes([2 | codec]) + body


def test_vector_segments_written_with_zstd_still_read() -> None:
    """Segments written before the values were deflated hold one zstd frame (no codec flag): they read back the
    same, and a frame of another size than the rows say is refused before it is decompressed."""
    values = [300, 7, 1 << 15, 2]
    raw = np.array(values, dtype="<u2").tobytes()
    old = _vector_segment(values, zstandard.ZstdCompressor(level=1).compress(raw), codec=0)
    assert linevectors.decode(old).values.tolist() == values
    assert linevectors.decode(old).keys.tolist() == linevectors.decode(_vector_segment(values)).keys.tolist() == [4, 9]
    with pytest.raises(CorruptSegment, match="holds 6 bytes of values; its rows say 8"):
        linevectors.decode(_vector_segment(values, zstandard.ZstdCompressor().compress(raw[:6]), codec=0))


@pytest.mark.parametrize(
    "body, words",
    [
        (lambda raw: deflate(raw, 1)[:-2], "values do not decompress: the stream is cut short"),
        (lambda raw: deflate(raw, 1) + b"\x00", "values do not decompress: the stream is cut short or too long"),
        (lambda raw: deflate(raw + raw, 1), "values do not decompress"),
        (lambda raw: deflate(raw[:6], 1), "holds 6 bytes of values; its rows say 8"),
        (lambda raw: b"\xff" * 12, "values do not decompress"),
    ],
)
def test_damaged_vector_values_are_refused(body: Any, words: str) -> None:
    """Deflated values cut short, with bytes past their end, longer or shorter than the rows say, or not
    deflate at all: refused with :class:`CorruptSegment`, never read as other values (and never inflated past
    what the rows say)."""
    values = [300, 7, 1 << 15, 2]
    with pytest.raises(CorruptSegment, match=words):
        linevectors.decode(_vector_segment(values, body(np.array(values, dtype="<u2").tobytes())))


def test_vector_values_widen_the_column_one_step_at_a_time(database_url: str) -> None:
    """16 bits while every value fits, 32 from the first past 2**16 - 1 (or below 0), 64 from the first past
    32 bits: what was held before each widening reads back the same, in whatever type the values came."""
    engine = make_engine(database_url)
    try:
        vectors = LineVectorTable(engine)
        steps = [
            ([65535, 0], np.uint16),
            ([65536], np.int32),
            ([-3, 9], np.int32),
            ([2**31], np.int64),
            ([1], np.int64),
        ]
        expected: list[int] = []
        for key, (values, dtype) in enumerate(steps, start=1):
            given = narrowest(np.array(values, dtype=np.int64)) if key % 2 else np.array(values, dtype=np.int64)
            vectors.append(np.array([key]), np.array([0, len(values)]), given)
            expected.extend(values)
            for table in (vectors, LineVectorTable(engine)):
                assert not bool(table.lacking(np.arange(1, key + 1)).any())
                found, _ = table.vectors(np.arange(1, key + 1))  # the appending table reads its segment here
                assert table._values.dtype == dtype
                assert found.dtype == np.int64
                assert found.tolist() == expected
    finally:
        engine.dispose()
