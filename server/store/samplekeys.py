"""pprof sample identities, stored once: each maps to its function-level stack node and label set.

A profile's blob lists sample-key ids, not stack nodes: the key keeps what
``go tool pprof`` would keep apart (addresses, line numbers), which exact
``-normalize`` needs, while its node gives every function-level view. Keys
are small increasing integers, so sorted and delta-coded they compress as
well as node ids did.

Keys are stored as append-only segments (``segments`` rows of their kind, columns of
hash, node, label set and line node, :mod:`server.store.columncodec`), not a
row each: a row and its unique hash index cost ~40 bytes a key on SQLite, and
inserting them with ``RETURNING`` was most of what a churny profile's new keys
cost. With no unique index, dedup is answered from memory: every segment is
read at first use and the hashes kept in a hash table (:mod:`server.store._keyindex`). A writer with new
keys takes the append lock (:mod:`server.store.appends`), reads the segments
others appended since it last looked, looks its keys up again, and appends
one segment with ids past every stored key: no hash ever gets two ids. Ids
enter the cache only once their segment has committed.

Keys stored before line data (migration 0015) have no line leaf
(:data:`NO_LINES`); ingest finds it when it sees such a key again and records
it in ``sample_key_lines`` (segments are never updated in place); garbage
collection folds those rows into the segments it rewrites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, delete, select

from server.store import columncodec, segmentcache
from server.store._keyindex import KeyIndex
from server.store.appends import SAMPLE_KEYS, Appends, EpochMoved, lock_appends
from server.store.database import insert_ignoring_conflicts
from server.store.models import SampleKeyLine, SegmentKind, SegmentRow
from server.store.segmentcache import SegmentCache, lookup_ids
from server.store.state import lock_against_gc

IntArray = npt.NDArray[np.int64]
#: The line node of a key stored before line data (migration 0015). (0 is the root, the leaf of an empty stack.)
NO_LINES = -1
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
    line_nodes: IntArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> KeyRows:
        """The rows ``which`` picks (a mask or positions, in order)."""
        return KeyRows(
            self.ids[which], self.hashes[which], self.nodes[which], self.labelsets[which], self.line_nodes[which]
        )


def encode(rows: KeyRows) -> bytes:
    return columncodec.encode(MAGIC, rows.ids, [rows.hashes, rows.nodes, rows.labelsets, rows.line_nodes])


def decode(data: bytes) -> KeyRows:
    ids, (hashes, nodes, labelsets, line_nodes) = columncodec.decode(MAGIC, 4, data)
    return KeyRows(ids, hashes, nodes, labelsets, line_nodes)


def segment_row(rows: KeyRows) -> dict[str, Any]:
    """The ``segments`` row holding ``rows`` (at least one)."""
    return segmentcache.segment_row(SegmentKind.SAMPLE_KEYS, rows.ids, encode(rows))


def concatenate(parts: Sequence[KeyRows]) -> KeyRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return KeyRows(empty, empty, empty, empty, empty)
    return KeyRows(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in ("ids", "hashes", "nodes", "labelsets", "line_nodes")
        )
    )


def read_segments(conn: Connection, above: int = 0) -> list[KeyRows]:
    """The segments holding keys past ``above``, in id order."""
    return [decode(data) for data in segmentcache.read_data(conn, SegmentKind.SAMPLE_KEYS, above)]


def read_line_fills(conn: Connection) -> IntArray:
    """``(key id, line node)`` of every key given its line leaf after it was stored."""
    rows = conn.execute(select(SampleKeyLine.key_id, SampleKeyLine.line_node_id)).all()
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def with_line_fills(keys: KeyRows, fills: IntArray) -> KeyRows:
    """``keys`` with the line leaves found later put in (fills of keys not among them are ignored)."""
    if fills.size == 0 or len(keys) == 0:
        return keys
    at = np.minimum(np.searchsorted(keys.ids, fills[:, 0]), len(keys) - 1)
    hit = keys.ids[at] == fills[:, 0]
    line_nodes = keys.line_nodes.copy()
    line_nodes[at[hit]] = fills[hit, 1]
    return KeyRows(keys.ids, keys.hashes, keys.nodes, keys.labelsets, line_nodes)


def forget_lines(engine: Engine) -> None:
    """Make every stored key one without a line leaf, as keys stored before migration 0015 are: what tests and
    benchmarks of the fill start from."""
    with engine.begin() as conn:
        lock_appends(conn, SAMPLE_KEYS)
        keys = read_segments(conn)
        conn.execute(delete(SegmentRow).where(SegmentRow.kind == SegmentKind.SAMPLE_KEYS))
        conn.execute(delete(SampleKeyLine))
        for part in keys:
            part.line_nodes = np.full(len(part), NO_LINES, dtype=np.int64)
            conn.execute(segmentcache.INSERT, segment_row(part))


class SampleKeyTable(SegmentCache[KeyRows]):
    """The process's copy of every stored sample key: columns by id, and an index from hash to id."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._index = KeyIndex()  # hash -> id
        self.node = np.zeros(1024, dtype=np.int64)
        self.labelset = np.zeros(1024, dtype=np.int64)
        self.line_node = np.full(1024, NO_LINES, dtype=np.int64)
        self.known = np.zeros(1024, dtype=bool)

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
        line_nodes: IntArray | Sequence[int] | None = None,
        epoch: int | None = None,
        appends: Appends | None = None,
    ) -> IntArray:
        """Ids for keys (given with their node, label set and line-tree leaf), appending those not stored yet:
        in ``appends`` (the profile's one write transaction; its ids are cached once it commits), or in a
        transaction of their own.

        New keys get ids in order of (node, label set), so a segment's node column is mostly small steps.
        With ``epoch`` (the GC epoch the nodes were resolved under), nothing is appended once a collection
        has run since (:class:`EpochMoved`): it may have dropped those nodes, and a stored key is found by
        its hash ever after, so it must never point at a node that is gone.
        """
        wanted_hashes = np.asarray(hashes, dtype=np.int64)
        node = np.asarray(nodes, dtype=np.int64)
        labelset = np.asarray(labelsets, dtype=np.int64)
        line = np.full(node.shape[0], NO_LINES, dtype=np.int64)
        if line_nodes is not None:
            line = np.asarray(line_nodes, dtype=np.int64)
        with self._lock:
            found = self.lookup(wanted_hashes)
            # a key twice in one call is stored once
            _, first = np.unique(wanted_hashes[found < 0], return_index=True)
            new = np.flatnonzero(found < 0)[first]
            if not new.size:
                return found
            if appends is None:
                with Appends(self._engine, epoch) as own:
                    self._append(wanted_hashes, node, labelset, line, new, epoch, own)
                return lookup_ids(self._index, wanted_hashes)
            high = self._high
            rows = self._append(wanted_hashes, node, labelset, line, new, epoch, appends)
            if self._high != high:  # the append's catch-up read other writers' keys: some may be among ours
                found = lookup_ids(self._index, wanted_hashes)
            if rows is not None:  # this transaction's keys, not in the index before it commits
                missing = np.flatnonzero(found < 0)
                mine = KeyIndex()
                mine.add(rows.hashes, rows.ids)
                found[missing] = np.frombuffer(mine.lookup(wanted_hashes[missing]), dtype=np.int64)
            return found

    def _append(
        self,
        hashes: IntArray,
        node: IntArray,
        labelset: IntArray,
        line: IntArray,
        new: IntArray,
        epoch: int | None,
        appends: Appends,
    ) -> KeyRows | None:
        """Under the append lock: catch up, then append the keys at ``new`` still missing; cached once committed."""
        conn = appends.segments(self)
        if epoch is not None and appends.epoch != epoch:  # the transaction's own epoch, if any, is checked too
            raise EpochMoved(appends.epoch)
        # Another writer appended since (the newest segment is past this process's): look again against its keys.
        if appends.appended_past(SAMPLE_KEYS, self._high) and self._catch_up(conn):
            new = new[lookup_ids(self._index, hashes[new]) < 0]
        if not new.size:
            return None
        new = new[np.lexsort((labelset[new], node[new]))]
        ids = self._high + 1 + np.arange(new.shape[0], dtype=np.int64)
        rows = KeyRows(ids, hashes[new], node[new], labelset[new], line[new])
        appends.add_segment(segment_row(rows))
        # Cached only once committed: an id from a rolled-back segment must never be handed out.
        appends.after_commit(lambda: self._committed(rows))
        return rows

    def fill_lines(self, ids: IntArray, line_nodes: IntArray, epoch: int | None = None) -> None:
        """Store the line-tree leaf of keys written before line data (seen again by ingest).

        Under the shared GC lock, and only if no collection ran since the leaves were resolved under
        ``epoch``: a collection could have dropped a node made for them that no key pointed at yet.
        Skipped, the keys are filled the next time they are seen.
        """
        if ids.size == 0:
            return
        with self._lock, self._engine.begin() as conn:
            if lock_against_gc(conn) != epoch and epoch is not None:
                return
            rows = [{"key_id": k, "line_node_id": n} for k, n in zip(ids.tolist(), line_nodes.tolist(), strict=True)]
            insert_ignoring_conflicts(conn, SampleKeyLine.__table__, rows)  # type: ignore[arg-type]
        # Cached only once committed, like every id.
        self.line_node[ids] = line_nodes

    def _read(self, conn: Connection, above: int) -> list[KeyRows]:
        """The segments past ``above``; the first time (all of them), with the line fills put in."""
        parts = read_segments(conn, above)
        if not self._loaded:
            parts = [with_line_fills(concatenate(parts), read_line_fills(conn))] if parts else []
        return parts

    def _add(self, rows: KeyRows) -> None:
        """Keys (in increasing id order, all above those loaded) into the columns and the index."""
        if len(rows) == 0:
            return
        ids = rows.ids
        self._grow(int(ids[-1]) + 1)
        self.node[ids] = rows.nodes
        self.labelset[ids] = rows.labelsets
        self.line_node[ids] = rows.line_nodes
        self.known[ids] = True
        # A hash met again under a newer id replaces the old: this copy can predate a collection in another
        # process that dropped the key, after which the hash was stored anew (the caches reset on the next
        # write, but a query's catch-up may read the new segment first).
        self._index.add(np.ascontiguousarray(rows.hashes, dtype=np.int64), np.ascontiguousarray(ids), replace=True)
        self._high = max(self._high, int(ids[-1]))

    def _grow(self, size: int) -> None:
        if size > self.node.shape[0]:
            size = max(size, self.node.shape[0] * 2)
            self.node = np.concatenate([self.node, np.zeros(size - self.node.shape[0], dtype=np.int64)])
            self.labelset = np.concatenate([self.labelset, np.zeros(size - self.labelset.shape[0], dtype=np.int64)])
            self.line_node = np.concatenate([self.line_node, np.full(size - self.line_node.shape[0], NO_LINES)])
            self.known = np.concatenate([self.known, np.zeros(size - self.known.shape[0], dtype=bool)])

    def resolve(self, ids: IntArray) -> tuple[IntArray, IntArray]:
        """Stack node and label set of every key id, reading keys other processes wrote."""
        self.load(ids)
        return self.node[ids], self.labelset[ids]

    def resolve_lines(self, ids: IntArray) -> tuple[IntArray, IntArray]:
        """Line-tree leaf (:data:`NO_LINES`: none stored) and label set of every key id."""
        self.load(ids)
        return self.line_node[ids], self.labelset[ids]

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
