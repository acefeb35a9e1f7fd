"""The C key index against a Python dictionary: the same ids on random keys of all 64 bits and on packed
small integers (the line frames' keys, which a weak hash would pile into runs), across many growths, and
bad input refused whole."""

from __future__ import annotations

import array

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.store._keyindex import KeyIndex

IntArray = npt.NDArray[np.int64]


def _lookup(index: KeyIndex, keys: IntArray) -> list[int]:
    ids: list[int] = np.frombuffer(index.lookup(keys), dtype=np.int64).tolist()
    return ids


def _check(index: KeyIndex, expected: dict[int, int], probes: IntArray) -> None:
    assert _lookup(index, probes) == [expected.get(k, -1) for k in probes.tolist()]
    assert len(index) == len(expected)


def test_random_keys_of_all_64_bits_match_a_dictionary() -> None:
    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(-(2**63), 2**63 - 1, 200_000, dtype=np.int64, endpoint=True))
    keys = np.concatenate([keys, np.array([0, -1, 1, -(2**63), 2**63 - 1], dtype=np.int64)])
    keys = np.unique(keys)
    rng.shuffle(keys)
    ids = rng.permutation(keys.shape[0]).astype(np.int64) + 1
    index = KeyIndex()
    index.add(keys, ids)
    expected = dict(zip(keys.tolist(), ids.tolist(), strict=True))
    absent = rng.integers(-(2**63), 2**63 - 1, 5_000, dtype=np.int64)
    probes = np.concatenate([keys[rng.integers(0, keys.shape[0], 20_000)], absent])
    rng.shuffle(probes)
    _check(index, expected, probes)
    assert (probes < 0).any() and (probes > 0).any()


def test_packed_line_frame_keys_match_a_dictionary_across_many_adds() -> None:
    """Keys laid out as ``function << 33 | inlined << 32 | line``: few bits vary, all in blocks. Added a
    profile's worth at a time, so the table grows from empty many times over."""
    rng = np.random.default_rng(11)
    functions = np.arange(1, 400, dtype=np.int64)
    lines = np.arange(1, 300, dtype=np.int64)
    packed = (functions[:, None] << 33 | lines[None, :]).reshape(-1)
    packed = np.concatenate([packed, packed | (1 << 32)])  # the inlined twins
    rng.shuffle(packed)
    index = KeyIndex()
    expected: dict[int, int] = {}
    capacities = set()
    next_id = 1
    for start in range(0, packed.shape[0], 1_500):
        chunk = packed[start : start + 1_500]
        ids = np.arange(next_id, next_id + chunk.shape[0], dtype=np.int64)
        next_id += chunk.shape[0]
        index.add(chunk, ids)
        expected.update(zip(chunk.tolist(), ids.tolist(), strict=True))
        capacities.add(index.capacity)
        if start % 30_000 == 0:  # now and then, the whole of it so far and keys next to them
            _check(index, expected, np.concatenate([packed[: start + 1_500], packed[: start + 1_500] + 1]))
    assert capacities == {4096 << doubling for doubling in range(8)}  # it grew at every size, keys kept
    assert index.capacity * 0.35 <= len(index) <= index.capacity * 0.7
    _check(index, expected, np.concatenate([packed, packed + 2, -packed]))


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3), max_size=40, unique=True), max_size=12
    ),
    probes=st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3), max_size=40),
)
def test_adds_and_lookups_match_a_dictionary(batches: list[list[int]], probes: list[int]) -> None:
    index = KeyIndex()
    expected: dict[int, int] = {}
    for batch in batches:
        keys = np.array(batch, dtype=np.int64)
        ids = np.arange(len(expected) + 1, len(expected) + 1 + len(batch), dtype=np.int64)
        if any(k in expected for k in batch):
            with pytest.raises(ValueError, match="indexed already"):
                index.add(keys, ids)
        else:
            index.add(keys, ids)
            expected.update(zip(batch, ids.tolist(), strict=True))
        _check(index, expected, np.array(probes + batch, dtype=np.int64))


def test_a_duplicate_is_refused_with_nothing_added() -> None:
    index = KeyIndex()
    index.add(np.array([10, -20], dtype=np.int64), np.array([1, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="key -20 is indexed already"):
        index.add(np.array([30, -20], dtype=np.int64), np.array([3, 4], dtype=np.int64))
    _check(index, {10: 1, -20: 2}, np.array([10, -20, 30], dtype=np.int64))


def test_a_key_twice_in_one_add_is_refused_and_the_keys_before_it_taken_out() -> None:
    """The second of a pair is met only while inserting: what the call put in is removed again, and the keys
    it displaced in their runs must stay reachable."""
    rng = np.random.default_rng(3)
    index = KeyIndex()
    before = np.unique(rng.integers(-(2**40), 2**40, 3_000))
    index.add(before, np.arange(1, before.shape[0] + 1, dtype=np.int64))
    expected = dict(zip(before.tolist(), range(1, before.shape[0] + 1), strict=True))
    index.reserve(20_000)  # no growth in between: the removals run on the table the inserts used
    capacity = index.capacity
    fresh = np.setdiff1d(np.unique(rng.integers(-(2**40), 2**40, 10_000)), before)
    batch = np.concatenate([fresh, fresh[:1]])
    with pytest.raises(ValueError, match="given twice"):
        index.add(batch, np.arange(10_000, 10_000 + batch.shape[0], dtype=np.int64))
    assert index.capacity == capacity
    _check(index, expected, np.concatenate([before, fresh]))
    index.add(fresh, np.arange(10_000, 10_000 + fresh.shape[0], dtype=np.int64))  # and they can go in after all
    expected.update(zip(fresh.tolist(), range(10_000, 10_000 + fresh.shape[0]), strict=True))
    _check(index, expected, np.concatenate([before, fresh]))


def test_ids_below_one_are_refused() -> None:
    index = KeyIndex()
    for bad in (0, -1):
        with pytest.raises(ValueError, match="ids must be at least 1"):
            index.add(np.array([5, 6], dtype=np.int64), np.array([1, bad], dtype=np.int64))
    assert len(index) == 0
    assert _lookup(index, np.array([5, 6], dtype=np.int64)) == [-1, -1]


def test_empty_lookups_and_adds() -> None:
    index = KeyIndex()
    assert index.lookup(np.zeros(0, dtype=np.int64)) == b""
    assert _lookup(index, np.array([0, 1, -1], dtype=np.int64)) == [-1, -1, -1]
    index.add(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert len(index) == 0
    index.add(np.array([0], dtype=np.int64), np.array([9], dtype=np.int64))
    assert index.lookup(np.zeros(0, dtype=np.int64)) == b""
    assert _lookup(index, np.array([0, 1], dtype=np.int64)) == [9, -1]


def test_reserve_makes_room_without_growing_later() -> None:
    index = KeyIndex()
    index.reserve(100_000)
    capacity = index.capacity
    assert capacity * 0.7 >= 100_000
    keys = np.arange(-50_000, 50_000, dtype=np.int64) * 7
    index.add(keys, np.arange(1, 100_001, dtype=np.int64))
    assert index.capacity == capacity
    index.reserve(10)  # never shrinks
    assert index.capacity == capacity
    assert _lookup(index, keys[[0, 99_999]]) == [1, 100_000]
    with pytest.raises(ValueError):
        index.reserve(-1)


def test_other_buffers_of_64_bit_integers_are_taken() -> None:
    index = KeyIndex()
    index.add(array.array("q", [4, -4]), np.array([1, 2], dtype=np.uint64))
    assert _lookup(index, np.array([-4, 4], dtype=np.int64)) == [2, 1]
    assert np.frombuffer(index.lookup(array.array("q", [4])), dtype=np.int64).tolist() == [1]


def test_wrong_buffers_are_refused_with_a_clear_error() -> None:
    index = KeyIndex()
    index.add(np.array([1, 2, 3], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64))
    strided = np.arange(10, dtype=np.int64)[::2]
    with pytest.raises(TypeError, match=r"keys must be a contiguous buffer of 64-bit integers \(.*contiguous"):
        index.lookup(strided)
    with pytest.raises(TypeError, match="ids must be a contiguous buffer"):
        index.add(np.arange(5, dtype=np.int64), np.arange(1, 11, dtype=np.int64)[::2])
    with pytest.raises(TypeError, match="keys must be a contiguous buffer of 64-bit integers, not format 'i'"):
        index.lookup(np.array([1, 2], dtype=np.int32))
    with pytest.raises(TypeError, match="64-bit integers, not format 'd'"):
        index.lookup(np.array([1.0], dtype=np.float64))
    with pytest.raises(TypeError, match="ids must be a contiguous buffer"):
        index.add(np.array([7], dtype=np.int64), np.array([7], dtype=np.int32))
    with pytest.raises(ValueError, match="keys and ids of one length"):
        index.add(np.array([7, 8], dtype=np.int64), np.array([7], dtype=np.int64))
    with pytest.raises(TypeError, match="keys must be a contiguous buffer"):
        index.lookup([1, 2])  # type: ignore[arg-type]
    assert len(index) == 3
    assert _lookup(index, np.array([1, 2, 3, 7, 8], dtype=np.int64)) == [1, 2, 3, -1, -1]


def test_replace_gives_keys_indexed_already_their_new_id() -> None:
    """What a table's copy does when a hash comes back under a new id (stored again after a collection)."""
    index = KeyIndex()
    index.add(np.array([10, -20, 30], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64))
    index.add(np.array([-20, 40, 40], dtype=np.int64), np.array([7, 8, 9], dtype=np.int64), replace=True)
    _check(index, {10: 1, -20: 7, 30: 3, 40: 9}, np.array([10, -20, 30, 40, 50], dtype=np.int64))
    with pytest.raises(ValueError, match="ids must be at least 1"):
        index.add(np.array([10], dtype=np.int64), np.array([0], dtype=np.int64), replace=True)
    _check(index, {10: 1, -20: 7, 30: 3, 40: 9}, np.array([10], dtype=np.int64))


def test_keys_added_in_many_batches_unsorted_are_all_found() -> None:
    """Batches as segments bring them (ids increasing, keys in any order), past several doublings."""
    index = KeyIndex()
    keys = np.arange(0, 300_000, 3, dtype=np.int64)
    for part in range(0, keys.shape[0], 7_000):
        chunk = keys[part : part + 7_000]
        index.add(chunk[::-1].copy(), chunk[::-1] * 10 + 1)
    probe = np.array([0, 3, 4, 299_997, 300_000, 150_000, -3], dtype=np.int64)
    assert _lookup(index, probe) == [1, 31, -1, 2_999_971, -1, 1_500_001, -1]
    assert len(index) == keys.shape[0]


def test_lookup_keeps_the_probes_order_on_small_and_big_tables() -> None:
    """The ids come back in the probes' order, whether the table fits in cache or not (lookup prefetches
    probes ahead of the one it reads)."""
    rng = np.random.default_rng(17)
    for wanted in (1_000, 250_000):
        keys = np.unique(rng.integers(-(2**40), 2**40, wanted)) * 2  # even: the odd keys + 1 below are new
        size = keys.shape[0]
        rng.shuffle(keys)
        index = KeyIndex()
        index.add(keys, np.arange(1, size + 1, dtype=np.int64))
        index.add(keys[:10] + 1, np.arange(size + 1, size + 11, dtype=np.int64))
        expected = dict(zip(keys.tolist(), range(1, size + 1), strict=True))
        expected.update(zip((keys[:10] + 1).tolist(), range(size + 1, size + 11), strict=True))
        probes = np.concatenate([keys[rng.integers(0, size, 3_000)], keys[:10] + 1, rng.integers(-(2**41), 2**41, 500)])
        rng.shuffle(probes)
        assert _lookup(index, probes) == [expected.get(k, -1) for k in probes.tolist()]
