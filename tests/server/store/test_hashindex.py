"""The vectorised hash table behind the stack trees' and line frames' indexes, against plain dictionaries."""

from __future__ import annotations

import numpy as np
import pytest

from server.store.hashindex import HashIndex, first_of_equal


def test_lookups_answer_what_a_dictionary_answers_across_growths() -> None:
    rng = np.random.default_rng(3)
    index = HashIndex()
    reference: dict[int, int] = {}
    keys = rng.choice(2**62, 40_000, replace=False).astype(np.int64)
    for part in range(0, keys.shape[0], 3_000):  # the table doubles several times on the way
        chunk = keys[part : part + 3_000]
        ids = rng.integers(0, 2**40, size=int(chunk.shape[0]), dtype=np.int64)
        index.add(chunk, ids)
        reference.update(zip(chunk.tolist(), ids.tolist(), strict=True))
    probe = np.concatenate([keys[::7], rng.integers(0, 2**62, 5_000)])
    assert index.lookup(probe).tolist() == [reference.get(k, -1) for k in probe.tolist()]
    assert len(index) == len(reference)


def test_a_present_key_keeps_its_id_and_is_reported() -> None:
    index = HashIndex()
    index.add(np.array([5, 9], dtype=np.int64), np.array([50, 90], dtype=np.int64))
    taken = index.add(np.array([9, 11], dtype=np.int64), np.array([99, 110], dtype=np.int64))
    assert taken.tolist() == [True, False]
    assert index.lookup(np.array([5, 9, 11, 12], dtype=np.int64)).tolist() == [50, 90, 110, -1]
    assert len(index) == 3


def test_keys_crowding_one_slot_are_all_kept() -> None:
    """Keys whose hashes fill a run of neighbouring slots: probing walks past the others each time."""
    index = HashIndex()
    keys = np.arange(0, 600, dtype=np.int64) * 1024  # many share low bits; the mix spreads them, the test checks
    index.add(keys, keys + 1)
    assert index.lookup(keys).tolist() == (keys + 1).tolist()


def test_negative_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        HashIndex().add(np.array([-1], dtype=np.int64), np.array([1], dtype=np.int64))


@pytest.mark.parametrize("spread", [3, 1_000, 2**62])
def test_first_of_equal_names_each_keys_first_position(spread: int) -> None:
    keys = np.random.default_rng(spread % 1000).integers(0, spread, 20_000)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    assert first_of_equal(keys).tolist() == first[inverse.reshape(-1)].tolist()
    assert first_of_equal(np.zeros(0, dtype=np.int64)).tolist() == []
