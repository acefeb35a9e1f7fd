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

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U64 = npt.NDArray[np.uint64]

EMPTY = -1
_MIN_CAPACITY = 1024
_U32_LIMIT = 1 << 32
#: A node index starts at 2**20 slots (4 MB): a growing tree's first 512K nodes never make it rebuild.
_MIN_NODE_SLOTS = 1 << 20


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


def capacity_for(count: int) -> int:
    """The power of two of slots that holds ``count`` keys at most half full."""
    capacity = _MIN_CAPACITY
    while capacity < 2 * count:
        capacity *= 2
    return capacity


def _home(keys: IntArray, mask: int) -> IntArray:
    """First slot of each key's probe sequence."""
    slots: IntArray = (mix(keys) & np.uint64(mask)).astype(np.int64)
    return slots


class HashIndex:
    """Ids by non-negative int64 key, each slot's key and id side by side (one cache line for both).

    Not safe to read while another thread adds: callers hold a lock around both.

    Memory: 2-4 slots of 16 bytes per key (32-64 bytes a key).
    """

    def __init__(self) -> None:
        self._table: IntArray = _empty_table(_MIN_CAPACITY)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def _capacity(self) -> int:
        return int(self._table.shape[0]) // 2

    def lookup(self, keys: IntArray) -> IntArray:
        """The id of each key, -1 where there is none."""
        found = np.full(keys.shape[0], -1, dtype=np.int64)
        if keys.size == 0 or self._count == 0:
            return found
        table = self._table
        mask = table.shape[0] // 2 - 1
        active = np.arange(keys.shape[0], dtype=np.int64)
        wanted = keys
        slots = _home(keys, mask)
        while active.size:
            present = table[2 * slots]
            hit = present == wanted
            found[active[hit]] = table[2 * slots[hit] + 1]
            going = ~hit & (present != EMPTY)
            active, wanted, slots = active[going], wanted[going], (slots[going] + 1) & mask
        return found

    def add(self, keys: IntArray, ids: IntArray) -> BoolArray:
        """Map ``keys`` (distinct, non-negative) to ``ids``; a key already present keeps its id.

        Returns which keys were present already (their ids not stored).
        """
        if keys.size == 0:
            return np.zeros(0, dtype=bool)
        if int(keys.min()) < 0:
            raise ValueError("hash index keys must be non-negative")
        if 2 * (self._count + keys.shape[0]) > self._capacity:
            self._rebuild(capacity_for(self._count + keys.shape[0]))
        taken = self._insert(keys.astype(np.int64, copy=False), ids.astype(np.int64, copy=False))
        self._count += keys.shape[0] - int(np.count_nonzero(taken))
        return taken

    def items(self) -> tuple[IntArray, IntArray]:
        """Every (key, id), in slot order."""
        pairs = self._table.reshape(-1, 2)
        used = pairs[:, 0] != EMPTY
        return pairs[used, 0], pairs[used, 1]

    def _rebuild(self, capacity: int) -> None:
        keys, ids = self.items()
        self._table = _empty_table(capacity)
        self._insert(keys, ids)

    def _insert(self, keys: IntArray, ids: IntArray) -> BoolArray:
        """Place every key, each round claiming the free slots the keys still looking stand on: several keys
        on one free slot all write it, one of them stays and the others probe on."""
        mask = self._capacity - 1
        table = self._table
        taken = np.zeros(keys.shape[0], dtype=bool)
        active = np.arange(keys.shape[0], dtype=np.int64)
        wanted, giving = keys, ids
        slots = _home(keys, mask)
        while active.size:
            present = table[2 * slots]
            same = present == wanted
            taken[active[same]] = True
            free = np.flatnonzero(present == EMPTY)
            claimed = 2 * slots[free]
            table[claimed] = wanted[free]
            won = free[table[claimed] == wanted[free]]
            table[2 * slots[won] + 1] = giving[won]
            going = np.ones(active.shape[0], dtype=bool)
            going[won] = False
            going &= ~same
            active, wanted, giving = active[going], wanted[going], giving[going]
            slots = (slots[going] + 1) & mask
        return taken


class NodeIndex:
    """Stack-tree node ids by 63-bit key, where the tree itself knows every node's key (``key_of``).

    Slots hold only ``id + 1`` (0: empty) as 32 bits: 8-16 bytes a node against 32-64 for
    :class:`HashIndex`. A churn profile adds tens of thousands of nodes, and the table doubles as the
    tree grows; on a busy machine the page faults of fresh memory are most of that cost, so the
    smaller table is the faster one, although a probe reads the candidate's key from the tree's
    columns. Same probing as :class:`HashIndex`; node ids must stay below 2**32 - 1. Callers hold a
    lock around reads and adds, as for :class:`HashIndex`.
    """

    def __init__(self, key_of: Callable[[IntArray], IntArray], capacity: int = _MIN_NODE_SLOTS) -> None:
        self._slots: npt.NDArray[np.uint32] = np.zeros(max(capacity, _MIN_CAPACITY), dtype=np.uint32)
        self._count = 0
        self._key_of = key_of

    def __len__(self) -> int:
        return self._count

    def lookup(self, keys: IntArray) -> IntArray:
        """The node id of each key, -1 where there is none."""
        found = np.full(keys.shape[0], -1, dtype=np.int64)
        if keys.size == 0 or self._count == 0:
            return found
        mask = self._slots.shape[0] - 1
        active = np.arange(keys.shape[0], dtype=np.int64)
        wanted = keys
        slots = _home(keys, mask)
        while active.size:
            held = self._slots[slots].astype(np.int64) - 1
            occupied = np.flatnonzero(held >= 0)
            hit = occupied[self._key_of(held[occupied]) == wanted[occupied]]
            found[active[hit]] = held[hit]
            going = held >= 0
            going[hit] = False
            active, wanted, slots = active[going], wanted[going], (slots[going] + 1) & mask
        return found

    def add(self, keys: IntArray, ids: IntArray) -> BoolArray:
        """Index ``ids`` under ``keys`` (distinct, non-negative; ``key_of(ids)`` must already give them);
        a key already present keeps its node. Returns which keys were present already."""
        if keys.size == 0:
            return np.zeros(0, dtype=bool)
        if int(ids.max()) >= _U32_LIMIT - 1 or int(ids.min()) < 0:
            raise ValueError("node index ids must be in [0, 2**32 - 1)")
        if 2 * (self._count + keys.shape[0]) > self._slots.shape[0]:
            self._rebuild(capacity_for(self._count + keys.shape[0]))
        taken = self._insert(keys, ids)
        self._count += keys.shape[0] - int(np.count_nonzero(taken))
        return taken

    def _rebuild(self, capacity: int) -> None:
        ids = self._slots[self._slots > 0].astype(np.int64) - 1
        self._slots = np.zeros(capacity, dtype=np.uint32)
        self._insert(self._key_of(ids), ids)

    def _insert(self, keys: IntArray, ids: IntArray) -> BoolArray:
        mask = self._slots.shape[0] - 1
        table = self._slots
        taken = np.zeros(keys.shape[0], dtype=bool)
        active = np.arange(keys.shape[0], dtype=np.int64)
        wanted, marks = keys, (ids + 1).astype(np.uint32)
        slots = _home(keys, mask)
        while active.size:
            held = table[slots].astype(np.int64) - 1
            occupied = np.flatnonzero(held >= 0)
            same = occupied[self._key_of(held[occupied]) == wanted[occupied]]
            taken[active[same]] = True
            free = np.flatnonzero(held < 0)
            table[slots[free]] = marks[free]
            won = free[table[slots[free]] == marks[free]]
            going = np.ones(active.shape[0], dtype=bool)
            going[won] = False
            going[same] = False
            active, wanted, marks = active[going], wanted[going], marks[going]
            slots = (slots[going] + 1) & mask
        return taken


def _empty_table(capacity: int) -> IntArray:
    table = np.zeros(2 * capacity, dtype=np.int64)
    table[0::2] = EMPTY
    return table


#: Scratch tables of :func:`first_of_equal`, one per thread, kept between calls: a fresh array of
#: megabytes costs its page faults again every call, which on a busy machine is most of the work.
_SCRATCH = threading.local()
_FREE = np.iinfo(np.int64).max


#: Slots of the largest scratch table kept (8 MB); a bigger batch (loading a whole tree) gets its own.
_KEPT_SCRATCH = 1 << 20


def _scratch(capacity: int) -> IntArray:
    if capacity > _KEPT_SCRATCH:
        return np.full(capacity, _FREE, dtype=np.int64)
    table: IntArray | None = getattr(_SCRATCH, "table", None)
    if table is None or table.shape[0] < capacity:
        table = np.full(capacity, _FREE, dtype=np.int64)
        _SCRATCH.table = table
    return table[:capacity]


def first_of_equal(keys: IntArray) -> IntArray:
    """For each position, the first position holding an equal key (itself when it is the first).

    Exact (keys are compared, not only their hashes), linear in the batch: the keys claim slots of a
    scratch table, the lowest position winning each slot, and equal keys follow the same probe path.
    """
    count = keys.shape[0]
    first = np.empty(count, dtype=np.int64)
    if count == 0:
        return first
    capacity = capacity_for(4 * count)  # an eighth full at most, so probe runs stay short
    mask = capacity - 1
    table = _scratch(capacity)
    active = np.arange(count, dtype=np.int64)
    wanted = keys
    slots = _home(keys, mask)
    claimed: list[IntArray] = []
    try:
        while active.size:
            free = table[slots] == _FREE
            claimed.append(slots[free])
            np.minimum.at(table, slots[free], active[free])
            holder = table[slots]
            same = keys[holder] == wanted
            first[active[same]] = holder[same]
            going = ~same
            active, wanted, slots = active[going], wanted[going], (slots[going] + 1) & mask
    finally:
        for touched in claimed:  # the table goes back clean for the next call
            table[touched] = _FREE
    return first
