"""pprof sample identities, stored once: each maps to its function-level stack node and label set.

A profile's blob lists sample-key ids, not stack nodes: the key keeps what
``go tool pprof`` would keep apart (addresses, line numbers), which exact
``-normalize`` needs, while its node gives every function-level view. Keys
are small increasing integers, so sorted and delta-coded they compress as
well as node ids did.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, bindparam, func, select, update

from server.store.database import chunks, insert_integers_returning
from server.store.models import SampleKey
from server.store.state import lock_against_gc

IntArray = npt.NDArray[np.int64]
#: The line node of a key stored before line data (migration 0015): NULL in the table. (0 is the root,
#: the leaf of an empty stack.)
NO_LINES = -1
#: The columns a process caches of a key.
_COLUMNS = (
    SampleKey.id,
    SampleKey.hash,
    SampleKey.node_id,
    SampleKey.labelset_id,
    func.coalesce(SampleKey.line_node_id, NO_LINES),
)
#: Unknown keys at which ``resolve`` reads the whole id range in one query.
BULK_LOAD = 2000


class SampleKeyTable:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[int, int] = {}
        self._lock = threading.Lock()
        self.node = np.zeros(1024, dtype=np.int64)
        self.labelset = np.zeros(1024, dtype=np.int64)
        self.line_node = np.full(1024, NO_LINES, dtype=np.int64)
        self.known = np.zeros(1024, dtype=bool)

    def lookup(self, hashes: Sequence[int]) -> list[int | None]:
        return list(map(self._ids.get, hashes))

    def create(
        self,
        hashes: Sequence[int],
        nodes: Sequence[int],
        labelsets: Sequence[int],
        line_nodes: Sequence[int] | None = None,
    ) -> list[int]:
        """Ids for new keys (given with their node, label set and line-tree leaf), inserting those not stored yet."""
        lines: Sequence[int | None] = line_nodes if line_nodes is not None else [None] * len(hashes)
        with self._lock:
            known = self._ids
            # a key twice in one call is inserted once; NO_LINES stands for NULL (no line leaf given)
            wanted: dict[int, tuple[int, ...]] = {}
            for h, n, ls, ln in zip(hashes, nodes, labelsets, lines, strict=True):
                if h not in known:
                    wanted[h] = (h, n, ls, NO_LINES if ln is None else ln)
            columns = _COLUMNS
            if wanted:
                with_lines = line_nodes is not None
                names = ("hash", "node_id", "labelset_id", "line_node_id")[: 4 if with_lines else 3]
                rows = [row[: len(names)] for row in wanted.values()]
                found: list[Sequence[int]] = []
                with self._engine.begin() as conn:
                    inserted = insert_integers_returning(conn, SampleKey.__tablename__, names, rows, "hash")
                    found.extend((key_id, key_hash, *wanted[key_hash][1:]) for key_id, key_hash in inserted)
                    # Stored by another writer a moment ago (the unique hash decided): read their ids.
                    raced = list(wanted.keys() - {key_hash for _, key_hash in inserted})
                    for part in chunks(raced, 500):
                        found.extend(conn.execute(select(*columns).where(SampleKey.hash.in_(part))).all())
                # Cached only once committed: an id from a rolled-back insert must never be handed out.
                self._add_many(np.array(found, dtype=np.int64).reshape(-1, 5))
            return [self._ids[h] for h in hashes]

    def _add(self, rows: Sequence[Sequence[int]]) -> None:
        if not rows:
            return
        self._grow(max(int(row[0]) for row in rows) + 1)
        for key_id, key_hash, node, labelset, line_node in rows:
            self._ids[int(key_hash)] = int(key_id)
            self.node[key_id] = node
            self.labelset[key_id] = labelset
            self.line_node[key_id] = NO_LINES if line_node is None else line_node
            self.known[key_id] = True

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
            statement = (
                update(SampleKey.__table__)  # type: ignore[arg-type]
                .where(SampleKey.__table__.c.id == bindparam("key_id"))
                .values(line_node_id=bindparam("line_node"))
            )
            rows = [{"key_id": k, "line_node": n} for k, n in zip(ids.tolist(), line_nodes.tolist(), strict=True)]
            for part in chunks(rows, 1000):
                conn.execute(statement, list(part))
        # Cached only once committed, like every id.
        self.line_node[ids] = line_nodes

    def _add_many(self, table: IntArray) -> None:
        """Rows ``(id, hash, node, labelset, line node)`` as one array: the bulk form of :meth:`_add`."""
        if table.shape[0] == 0:
            return
        ids = table[:, 0]
        self._grow(int(ids.max()) + 1)
        self.node[ids] = table[:, 2]
        self.labelset[ids] = table[:, 3]
        self.line_node[ids] = table[:, 4]
        self.known[ids] = True
        self._ids.update(zip(table[:, 1].tolist(), ids.tolist(), strict=True))

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
        """Make sure every key id is cached, reading keys other processes wrote."""
        if ids.size:
            top = int(ids.max())
            unknown = np.unique(
                ids[(ids >= self.known.shape[0]) | ~self.known[np.minimum(ids, self.known.shape[0] - 1)]]
            )
            if unknown.size:
                with self._lock, self._engine.connect() as conn:
                    columns = _COLUMNS
                    if unknown.size > BULK_LOAD:
                        # A cold cache (a fresh server): one range read instead of a query per 500 ids.
                        low, high = int(unknown[0]), int(unknown[-1])
                        rows = conn.execute(select(*columns).where(SampleKey.id >= low, SampleKey.id <= high))
                        self._add_many(np.fromiter(chain.from_iterable(rows), dtype=np.int64).reshape(-1, 5))
                    else:
                        for part in chunks(unknown.tolist(), 500):
                            self._add(conn.execute(select(*columns).where(SampleKey.id.in_(part))).all())
                if top >= self.known.shape[0] or not bool(self.known[ids].all()):
                    raise LookupError("sample keys are missing from the database")
