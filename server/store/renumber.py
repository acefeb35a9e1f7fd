"""Giving the stack tree's node ids back: the live nodes renumbered 1, 2, 3... inside a garbage collection.

Node ids are handed out past every id before, and they are 32-bit (:data:`server.store.stacks.NODE_LIMIT`), so
a store fed by a service whose stacks rarely repeat would use them all within weeks even though retention keeps
only a week of nodes alive: collection leaves gaps. Once the highest id has passed :data:`RENUMBER_AT` of the
space and the gaps below it are at least a quarter of the space, a collection renumbers the live nodes, in the
transaction that swept them, which holds the collection lock and every append lock:

- the live nodes, in id order, get ids 1, 2, 3...: the order is kept, so a parent's id stays below its
  children's, and every node array of the store stays sorted under the mapping;
- every tree segment is written again with the new ids and parents;
- every sample key segment with its node column mapped (keys keep their ids, so profile blobs, which name
  keys only, are untouched);
- every rollup's node table with its node ids mapped;
- the node generation moves on (:mod:`server.store.state`).

Writers whose caches predate it append nothing (the collection moved the GC epoch on); rollup builds check
the generation before they write; readers refuse to mix numberings (:mod:`server.store.cachemarks`). The cost
is proportional to what is stored, paid once in a long while (docs/storage.md "Renumbering node ids").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, delete, insert, select, update

from server.store import blob, samplekeys, stacks
from server.store.models import RollupBlob, SegmentKind, SegmentRow
from server.store.samples import SampleArrays
from server.store.segmentcache import segment_row
from server.store.stackcodec import Segment, encode
from server.store.state import next_generation

log = logging.getLogger(__name__)
IntArray = npt.NDArray[np.int64]

#: The share of the node id space the highest id must have passed before a collection renumbers.
RENUMBER_AT = 0.5
#: Nodes a rewritten tree segment holds at most (as migration 0013 wrote a whole store).
SEGMENT_NODES = 65_536
#: Rollup blobs read and written again at a time.
_BATCH = 500
#: A rollup blob's primary key, the id first.
_KEY = (RollupBlob.rollup_id, RollupBlob.width_s, RollupBlob.bucket_ns, RollupBlob.series_id)


@dataclass(frozen=True, slots=True)
class Renumbering:
    """What one renumbering did: the highest node id before and after (the live nodes), and the rows rewritten."""

    highest_before: int
    highest_after: int
    key_segments: int
    rollups: int
    generation: int


def wanted(highest: int, live: int) -> bool:
    """Whether a collection that leaves ``live`` nodes under a highest id of ``highest`` should renumber them:
    once the highest has passed :data:`RENUMBER_AT` of the space (the limit is read at call time: tests lower
    it), and only if it gives back a quarter of the space or more. A renumbering costs a rewrite of what is
    stored, so it comes at most once per quarter of the space handed out anew."""
    limit = stacks.NODE_LIMIT
    return highest >= limit * RENUMBER_AT and highest - live >= limit // 4


class _Mapping:
    """Old node ids to new, by position in the sorted live ids (the root, 0, stays 0)."""

    def __init__(self, live: IntArray) -> None:
        self.live = live

    def __call__(self, nodes: IntArray, what: str) -> IntArray:
        nodes = np.asarray(nodes, dtype=np.int64)
        at, stored = stacks.positions_in(self.live, nodes)
        inner = nodes > stacks.ROOT
        found = stored | ~inner
        if not bool(found.all()):
            missing = np.unique(nodes[~found])[:5].tolist()
            raise RuntimeError(f"{what} name stack nodes the collection did not keep: {missing}")
        mapped: IntArray = np.where(inner, at + 1, stacks.ROOT)
        return mapped


def renumber(conn: Connection, tree: Segment) -> Renumbering:
    """In the collection's transaction, after its sweep: renumber ``tree`` (every stored node, in id order)
    and everything that names its nodes."""
    mapping = _Mapping(tree.ids)
    count = int(tree.ids.shape[0])
    new_ids = np.arange(1, count + 1, dtype=np.int64)
    kind = SegmentKind(stacks.FUNCTIONS)
    conn.execute(delete(SegmentRow).where(SegmentRow.kind == kind))
    parents = mapping(tree.parents, "stack nodes")
    for start in range(0, count, SEGMENT_NODES):
        part = slice(start, start + SEGMENT_NODES)
        segment = Segment(new_ids[part], parents[part], tree.frames[part], tree.recursive[part])
        conn.execute(insert(SegmentRow).values(**segment_row(kind, segment.ids, encode(segment))))
    key_segments = 0
    for rows in samplekeys.read_segments(conn):
        mapped = samplekeys.KeyRows(rows.ids, rows.hashes, mapping(rows.nodes, "sample keys"), rows.labelsets)
        _replace(conn, SegmentKind.SAMPLE_KEYS, int(rows.ids[0]), samplekeys.segment_row(mapped))
        key_segments += 1
    rollups = 0
    for key, data in _rollup_blobs(conn):
        nodes = blob.decode_nodes(data)
        if nodes is None:
            continue
        renamed = SampleArrays(mapping(nodes.keys, "rollup node tables"), nodes.values)
        again = blob.encode(blob.decode(data), renamed, level=blob.ROLLUP_LEVEL)
        conn.execute(update(RollupBlob).where(*(c == v for c, v in zip(_KEY, key, strict=True))).values(data=again))
        rollups += 1
    generation = next_generation(conn)
    done = Renumbering(int(tree.ids[-1]) if count else 0, count, key_segments, rollups, generation)
    log.warning(
        "stack tree renumbered",
        extra={
            "highest_before": done.highest_before,
            "highest_after": done.highest_after,
            "key_segments": key_segments,
            "rollups": rollups,
            "generation": generation,
        },
    )
    return done


def _replace(conn: Connection, kind: SegmentKind, first_id: int, row: dict[str, Any]) -> None:
    conn.execute(delete(SegmentRow).where(SegmentRow.kind == kind, SegmentRow.first_id == first_id))
    conn.execute(insert(SegmentRow).values(**row))


def _rollup_blobs(conn: Connection) -> Iterator[tuple[tuple[int, ...], bytes]]:
    """Every rollup blob with its whole primary key (the partition keys and the series: an update by it touches one
    partition, and one shard were the table distributed), a batch at a time in id order."""
    cursor = 0
    while True:
        batch = conn.execute(
            select(*_KEY, RollupBlob.data)
            .where(RollupBlob.rollup_id > cursor)
            .order_by(RollupBlob.rollup_id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        for row in batch:
            yield tuple(int(v) for v in row[:-1]), bytes(row[-1])
        cursor = int(batch[-1][0])
