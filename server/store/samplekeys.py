"""pprof sample identities, stored once: each maps to its function-level stack node and label set.

A profile's blob lists sample-key ids, not stack nodes: the key keeps what
``go tool pprof`` would keep apart (addresses, line numbers), which exact
``-normalize`` needs, while its node gives every function-level view. Keys
are small increasing integers, so sorted and delta-coded they compress as
well as node ids did.

Keys are stored as append-only segments (``segments`` rows of their kind, columns of
hash, node and label set, :mod:`server.store.columncodec`), not a
row each: a row and its unique hash index cost ~40 bytes a key on SQLite, and
inserting them with ``RETURNING`` was most of what a churny profile's new keys
cost. With no unique index, dedup is answered from memory: every segment is
read at first use and the hashes kept in a hash table (:mod:`server.store._keyindex`). A writer with new
keys takes the append lock (:mod:`server.store.appends`), reads the segments
others appended since it last looked, looks its keys up again, and appends
one segment with ids past every stored key: no hash ever gets two ids. Ids
enter the cache only once their segment has committed.

A key's lines are its line vector (:mod:`server.store.linevectors`), appended
in the key's transaction: :meth:`SampleKeyTable.create` tells its caller which
keys it appended. (Segments written before migration 0022 have a fourth
column, the key's leaf in a tree of line frames that is no longer kept; it is
read past.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from server.store import columncodec, reserved, segmentcache
from server.store._keyindex import KeyIndex
from server.store.appends import SAMPLE_KEYS, Appends, EpochMoved
from server.store.cachemarks import CacheMarks
from server.store.models import SegmentKind
from server.store.segmentcache import SegmentCache, lookup_ids

IntArray = npt.NDArray[np.int64]
#: Told the ids of the keys a :meth:`SampleKeyTable.create` appends and their positions in its arguments, in
#: the transaction appending them (before it commits).
Appended = Callable[[IntArray, IntArray, Appends], None]
#: A sample-key segment's magic bytes (:mod:`server.store.columncodec`).
MAGIC = b"SK"
#: Keys a segment holds at most when a whole store is written at once (migration 0018); a write appends its own.
SEGMENT_KEYS = 65_536


@dataclass(slots=True)
class KeyRows:
    """Sample keys in increasing id order, a column each."""

    ids: IntArray
    hashes: IntArray
    nodes: IntArray
    labelsets: IntArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> KeyRows:
        """The rows ``which`` picks (a mask or positions, in order)."""
        return KeyRows(self.ids[which], self.hashes[which], self.nodes[which], self.labelsets[which])


def encode(rows: KeyRows) -> bytes:
    return columncodec.encode(MAGIC, rows.ids, [rows.hashes, rows.nodes, rows.labelsets], columncodec.FAST_LEVEL)


def decode(data: bytes) -> KeyRows:
    """A segment's keys; one written before migration 0022 has a fourth column (a line-tree leaf), read past."""
    width = 4 if columncodec.columns_of(data) == 4 else 3
    ids, columns = columncodec.decode(MAGIC, width, data)
    return KeyRows(ids, columns[0], columns[1], columns[2])


def segment_row(rows: KeyRows) -> dict[str, Any]:
    """The ``segments`` row holding ``rows`` (at least one)."""
    return segmentcache.segment_row(SegmentKind.SAMPLE_KEYS, rows.ids, encode(rows))


def concatenate(parts: Sequence[KeyRows]) -> KeyRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return KeyRows(empty, empty, empty, empty)
    columns = ("ids", "hashes", "nodes", "labelsets")
    return KeyRows(*(np.concatenate([getattr(p, name) for p in parts]) for name in columns))


def read_segments(conn: Connection, above: int = 0) -> list[KeyRows]:
    """The segments holding keys past ``above``, in id order."""
    return [decode(data) for data in segmentcache.read_data(conn, SegmentKind.SAMPLE_KEYS, above)]


def first_positions(hashes: IntArray, at: IntArray) -> IntArray:
    """For each position ``p`` in ``at``, the first position in ``at`` holding ``hashes[p]`` (-1 elsewhere).

    One pass through a scratch hash table (a key given twice keeps the last id given, so the positions go in
    backwards): ``np.unique(..., return_index=True)`` sorted the hashes to find the same, ~90 us for a churny
    profile's ~2,000 new keys against ~25.
    """
    first = np.full(hashes.shape[0], -1, dtype=np.int64)
    backwards = at[::-1]
    index = KeyIndex()
    index.add(np.ascontiguousarray(hashes[backwards]), np.ascontiguousarray(backwards + 1), replace=True)
    first[at] = np.frombuffer(index.lookup(np.ascontiguousarray(hashes[at])), dtype=np.int64) - 1
    return first


#: Node and label-set ids below these are packed into one int64 sort key; larger ones (node ids reach 2**32) take
#: ``lexsort``, which orders them the same.
_PACKED_NODE = 1 << 31
_PACKED_LABELSET = 1 << 32


def by_node(node: IntArray, labelset: IntArray) -> IntArray:
    """The order of rows by (node, label set), ties in the order given: ``np.lexsort((labelset, node))``.

    Both columns packed into one key take a single stable sort, which finds the runs a walk's nodes come in:
    ~9 us for a churny profile's ~2,000 new keys, where the two-key ``lexsort`` took ~90.
    """
    if node.size and (
        int(node.min()) < 0
        or int(node.max()) >= _PACKED_NODE
        or int(labelset.min()) < 0
        or int(labelset.max()) >= _PACKED_LABELSET
    ):
        return np.lexsort((labelset, node))
    order: IntArray = np.argsort((node << 32) | labelset, kind="stable")
    return order


class SampleKeyTable(SegmentCache[KeyRows]):
    """The process's copy of every stored sample key: columns by id, and an index from hash to id."""

    NODE_IDS = True

    def __init__(self, engine: Engine, marks: CacheMarks | None = None) -> None:
        super().__init__(engine, marks)
        self._index = KeyIndex()  # hash -> id
        # Columns by key id, grown in place past a few thousand keys (server.store.reserved): a churny profile
        # brings ~2,000 keys, and growing by copying wrote each key's bytes again into fresh pages.
        self.node = reserved.zeros(1024, np.int64)
        self.labelset = reserved.zeros(1024, np.int64)
        self.known = reserved.zeros(1024, np.bool_)

    def lookup(self, hashes: IntArray) -> IntArray:
        """The id of every hash, -1 for those not stored (every segment is read at first use)."""
        with self._lock:
            if not self._loaded:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            return lookup_ids(self._index, hashes)

    def create(
        self,
        hashes: IntArray | Sequence[int],
        nodes: IntArray | Sequence[int],
        labelsets: IntArray | Sequence[int],
        epoch: int | None = None,
        appends: Appends | None = None,
        appended: Appended | None = None,
    ) -> IntArray:
        """Ids for keys (given with their node and label set), appending those not stored yet: in ``appends``
        (the profile's one write transaction; its ids are cached once it commits), or in a transaction of their
        own. ``appended`` is told, in that transaction, which keys this call appends (what else must be
        written with them: their line vectors).

        New keys get ids in order of (node, label set), so a segment's node column is mostly small steps.
        With ``epoch`` (the GC epoch the nodes were resolved under), nothing is appended once a collection
        has run since (:class:`EpochMoved`): it may have dropped those nodes, and a stored key is found by
        its hash ever after, so it must never point at a node that is gone.
        """
        wanted_hashes = np.asarray(hashes, dtype=np.int64)
        node = np.asarray(nodes, dtype=np.int64)
        labelset = np.asarray(labelsets, dtype=np.int64)
        with self._lock:
            found = self.lookup(wanted_hashes)
            missing = np.flatnonzero(found < 0)
            if not missing.size:
                return found
            first = first_positions(wanted_hashes, missing)
            new = missing[first[missing] == missing]  # a key twice in one call is stored once
            if appends is None:
                with Appends(self._engine, epoch) as own:
                    self._append(wanted_hashes, node, labelset, new, epoch, own, appended)
                return lookup_ids(self._index, wanted_hashes)
            high = self._high
            placed = self._append(wanted_hashes, node, labelset, new, epoch, appends, appended)
            if self._high != high:  # the append's catch-up read other writers' keys: some may be among ours
                found = lookup_ids(self._index, wanted_hashes)
            if placed is not None:  # this transaction's keys, not in the index before it commits
                rows, at = placed
                missing = np.flatnonzero(found < 0)
                by_position = np.full(wanted_hashes.shape[0], -1, dtype=np.int64)
                by_position[at] = rows.ids
                found[missing] = by_position[first[missing]]
            return found

    def _append(
        self,
        hashes: IntArray,
        node: IntArray,
        labelset: IntArray,
        new: IntArray,
        epoch: int | None,
        appends: Appends,
        appended: Appended | None,
    ) -> tuple[KeyRows, IntArray] | None:
        """Under the append lock: catch up, then append the keys at ``new`` still missing; cached once committed.
        The rows appended, and their positions in the arguments."""
        conn = appends.segments(self)
        if epoch is not None and appends.epoch != epoch:  # the transaction's own epoch, if any, is checked too
            raise EpochMoved(appends.epoch)
        # Another writer appended since (the newest segment is past this process's): look again against its keys.
        if appends.appended_past(SAMPLE_KEYS, self._high) and self._catch_up(conn, guarded=appends.guarded):
            new = new[lookup_ids(self._index, hashes[new]) < 0]
        if not new.size:
            return None
        new = new[by_node(node[new], labelset[new])]
        ids = self._high + 1 + np.arange(new.shape[0], dtype=np.int64)
        rows = KeyRows(ids, hashes[new], node[new], labelset[new])
        appends.add_segment(segment_row(rows))
        if appended is not None:
            appended(ids, new, appends)
        # Cached only once committed: an id from a rolled-back segment must never be handed out.
        appends.after_commit(lambda: self._committed(rows))
        return rows, new

    def _read(self, conn: Connection, above: int) -> list[KeyRows]:
        return read_segments(conn, above)

    def _add(self, rows: KeyRows) -> None:
        """Keys (in increasing id order, all above those loaded) into the columns and the index."""
        if len(rows) == 0:
            return
        ids = rows.ids
        self._grow(int(ids[-1]) + 1)
        self.node[ids] = rows.nodes
        self.labelset[ids] = rows.labelsets
        self.known[ids] = True
        # A hash met again under a newer id replaces the old: this copy can predate a collection in another
        # process that dropped the key, after which the hash was stored anew (the caches reset on the next
        # write, but a query's catch-up may read the new segment first).
        self._index.add(np.ascontiguousarray(rows.hashes, dtype=np.int64), np.ascontiguousarray(ids), replace=True)
        self._high = max(self._high, int(ids[-1]))

    def _grow(self, size: int) -> None:
        if size > self.node.shape[0]:
            size = max(size, self.node.shape[0] * 2)
            self.node = reserved.grown(self.node, size)
            self.labelset = reserved.grown(self.labelset, size)
            self.known = reserved.grown(self.known, size)

    def resolve(self, ids: IntArray) -> tuple[IntArray, IntArray]:
        """Stack node and label set of every key id, reading keys other processes wrote."""
        self.load(ids)
        return self.node[ids], self.labelset[ids]

    def load(self, ids: IntArray) -> None:
        """Make sure every key id is cached, reading the segments other processes appended."""
        if ids.size == 0:
            return
        with self._lock:
            top = int(ids.max())
            if not self._loaded or top > self._high:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            if int(ids.min()) < 0 or top >= self.known.shape[0] or not bool(self.known[ids].all()):
                raise LookupError("sample keys are missing from the database")
