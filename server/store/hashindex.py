"""Integer keys to integer ids in an open-addressing hash table of numpy arrays, probed for a whole batch at once.

Ingest looks up tens of thousands of keys a profile (every frame of every new
stack). A sorted array answers with a binary search per key, each step a
likely cache miss in a table of millions; a hash table answers with one or
two independent reads per key, which the processor overlaps. Lookups and
inserts are vectorised: each probe round handles every key still looking, so
the Python cost is a few numpy calls per round, not per key.

Keys are non-negative int64 (packed pairs, or 63-bit hashes); -1 marks an
empty slot. Linear probing with the table at most half full: about 1.5
probes a hit and 2.5 a miss.

:func:`first_of_equal` is the same table used once to group equal keys of a
batch (a ``np.unique`` without the sort).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U64 = npt.NDArray[np.uint64]

EMPTY = -1
_MIN_CAPACITY = 1024


def mix(keys: IntArray) -> U64:
    """splitmix64's finaliser over int64 keys (as unsigned): every input bit moves every output bit."""
    x = keys.view(np.uint64) if keys.dtype == np.int64 else keys.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        mixed: U64 = x ^ (x >> np.uint64(31))
    return mixed


def _capacity_for(count: int) -> int:
    capacity = _MIN_CAPACITY
    while capacity < 2 * count:
        capacity *= 2
    return capacity


def _home(keys: IntArray, mask: int) -> IntArray:
    """First slot of each key's probe sequence."""
    slots: IntArray = (mix(keys) & np.uint64(mask)).astype(np.int64)
    return slots


class HashIndex:
    """Ids by non-negative int64 key. Memory: two int64 arrays of 2-4 slots per key (32-64 bytes a key)."""

    def __init__(self) -> None:
        self._keys: IntArray = np.full(_MIN_CAPACITY, EMPTY, dtype=np.int64)
        self._ids: IntArray = np.zeros(_MIN_CAPACITY, dtype=np.int64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def lookup(self, keys: IntArray) -> IntArray:
        """The id of each key, -1 where there is none."""
        found = np.full(keys.shape[0], -1, dtype=np.int64)
        if keys.size == 0 or self._count == 0:
            return found
        mask = self._keys.shape[0] - 1
        table_keys, table_ids = self._keys, self._ids
        active = np.arange(keys.shape[0], dtype=np.int64)
        wanted = keys
        slots = _home(keys, mask)
        while active.size:
            present = table_keys[slots]
            hit = present == wanted
            found[active[hit]] = table_ids[slots[hit]]
            going = ~hit & (present != EMPTY)
            active, wanted, slots = active[going], wanted[going], (slots[going] + 1) & mask
        return found

    def add(self, keys: IntArray, ids: IntArray) -> None:
        """Map ``keys`` (distinct, non-negative) to ``ids``; a key already present gets the new id."""
        if keys.size == 0:
            return
        if int(keys.min()) < 0:
            raise ValueError("hash index keys must be non-negative")
        if 2 * (self._count + keys.shape[0]) > self._keys.shape[0]:
            self._rebuild(_capacity_for(self._count + keys.shape[0]))
        self._count += self._insert(keys.astype(np.int64, copy=False), ids.astype(np.int64, copy=False))

    def items(self) -> tuple[IntArray, IntArray]:
        """Every (key, id), in slot order."""
        used = self._keys != EMPTY
        return self._keys[used], self._ids[used]

    def _rebuild(self, capacity: int) -> None:
        keys, ids = self.items()
        self._keys = np.full(capacity, EMPTY, dtype=np.int64)
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._insert(keys, ids)

    def _insert(self, keys: IntArray, ids: IntArray) -> int:
        """Place every key, each round claiming the free slots the keys still looking stand on: several keys
        on one free slot all write it, one of them stays and the others probe on. Returns the keys added."""
        mask = self._keys.shape[0] - 1
        table_keys, table_ids = self._keys, self._ids
        active = np.arange(keys.shape[0], dtype=np.int64)
        slots = _home(keys, mask)
        added = 0
        while active.size:
            free = table_keys[slots] == EMPTY
            table_keys[slots[free]] = keys[active[free]]
            present = table_keys[slots]
            placed = present == keys[active]
            table_ids[slots[placed]] = ids[active[placed]]
            added += int(np.count_nonzero(placed & free))
            going = ~placed
            active, slots = active[going], (slots[going] + 1) & mask
        return added


def first_of_equal(keys: IntArray) -> IntArray:
    """For each position, the first position holding an equal key (itself when it is the first).

    Exact (keys are compared, not only their hashes), linear in the batch: the keys claim slots of a
    scratch table, the lowest position winning each slot, and equal keys follow the same probe path.
    """
    count = keys.shape[0]
    first = np.empty(count, dtype=np.int64)
    if count == 0:
        return first
    capacity = _capacity_for(4 * count)  # an eighth full at most: a scratch table, probe runs kept short
    mask = capacity - 1
    table = np.full(capacity, count, dtype=np.int64)  # position holding the slot; ``count``: none
    active = np.arange(count, dtype=np.int64)
    slots = _home(keys, mask)
    padded = np.concatenate([keys, np.zeros(1, dtype=np.int64)])  # so an empty slot's "key" can be read
    while active.size:
        holder = table[slots]
        free = holder == count
        np.minimum.at(table, slots[free], active[free])
        holder = table[slots]
        same = padded[holder] == keys[active]
        first[active[same]] = holder[same]
        going = ~same
        active, slots = active[going], (slots[going] + 1) & mask
    return first
