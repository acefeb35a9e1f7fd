"""Garbage collection of deduplicated rows that no stored profile or rollup references any more.

After retention deletes old profiles, functions, stack nodes, sample keys and
label sets that only they used are dead weight. Blobs reference them by id,
invisibly to SQL, so collection is mark and sweep:

1. mark, without blocking anyone: read every blob up to the current highest
   profile and rollup ids and collect the sample keys they use;
2. in one write transaction that first bumps ``gc_epoch`` (which takes the
   write lock): mark the blobs written meanwhile, derive the stack nodes (with
   all their ancestors), line vectors, functions and label sets still in use,
   delete the rest. Segment tables (stack nodes, sample keys, line vectors,
   functions) get the segments that lost rows written again without them;
   each keeps its highest id, since appends number past it;
3. in the same transaction, once the stack tree's highest id has passed half of its id space and the gaps
   below it are a quarter of the space or more, the live nodes are renumbered 1, 2, 3...
   (:mod:`server.store.renumber`), so the ids collection left as gaps are handed out again.

Every process's ingest compares ``gc_epoch`` with the epoch its caches were
filled in, inside the transaction that stores a profile, and retries with
empty caches when it changed. Without a renumbering ids are never reused, so a
cache can only miss; a renumbering moves the node generation on as well, which
readers check (:mod:`server.store.cachemarks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, delete, func, insert, select

from server.store import blob, linevectors, renumber, samplekeys, symbols
from server.store._treeindex import closure
from server.store.appends import FUNCTIONS as FUNCTION_APPENDS
from server.store.appends import LINE_VECTORS, SAMPLE_KEYS
from server.store.appends import lock_appends as lock_table
from server.store.database import chunks
from server.store.models import ProfileBlob, RollupBlob, SampleLabelset, SegmentKind, SegmentRow
from server.store.repository import Store
from server.store.segmentcache import segment_row
from server.store.stackcodec import Segment, encode
from server.store.stacks import FUNCTIONS, ROOT, concatenate, lock_appends, positions_in, read_segments
from server.store.state import lock_for_gc

log = logging.getLogger(__name__)
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
BATCH = 2000


def _keys_in(conn: Connection, id_column: Any, data_column: Any, above: int, upto: int) -> list[IntArray]:
    """Distinct sample keys of the blobs with ``above < id <= upto``, read in batches."""
    found: list[IntArray] = []
    cursor = above
    while cursor < upto:
        rows = conn.execute(
            select(id_column, data_column).where(id_column > cursor, id_column <= upto).order_by(id_column).limit(BATCH)
        ).all()
        if not rows:
            break
        found = [np.unique(np.concatenate(found + [blob.decode(bytes(data)).keys for _, data in rows]))]
        cursor = int(rows[-1][0])
    return found


def _mark(conn: Connection, profiles_above: int, profiles_upto: int, rollups_above: int, rollups_upto: int) -> IntArray:
    found = _keys_in(conn, ProfileBlob.profile_id, ProfileBlob.data, profiles_above, profiles_upto)
    found += _keys_in(conn, RollupBlob.rollup_id, RollupBlob.data, rollups_above, rollups_upto)
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def _highest(conn: Connection) -> tuple[int, int]:
    profiles = conn.execute(select(func.max(ProfileBlob.profile_id))).scalar() or 0
    rollups = conn.execute(select(func.max(RollupBlob.rollup_id))).scalar() or 0
    return int(profiles), int(rollups)


def _int_rows(conn: Connection, query: Any, width: int) -> IntArray:
    """The rows as an integer array. ``np.array`` of Row objects probes each for the array protocols,
    and every probe is a failed key lookup: that cost 1.4 s for 355,000 rows, the values themselves nothing."""
    return np.fromiter(chain.from_iterable(conn.execute(query)), dtype=np.int64).reshape(-1, width)


def collect_garbage(store: Store) -> dict[str, int]:
    """Delete unreferenced functions, stack nodes, sample keys (with their line vectors) and label sets, and
    renumber the stack tree when its ids run low; returns counts deleted (and ``renumbered_nodes``: the nodes
    renumbered, 0 when it was not)."""
    with store.engine.connect() as conn:
        profiles_upto, rollups_upto = _highest(conn)
        keys = _mark(conn, 0, profiles_upto, 0, rollups_upto)
    removed = {"sample_keys": 0, "stack_nodes": 0, "line_vectors": 0, "functions": 0, "labelsets": 0}
    with store.engine.begin() as conn:
        lock_for_gc(conn)
        latest_profiles, latest_rollups = _highest(conn)
        newer = _mark(conn, profiles_upto, latest_profiles, rollups_upto, latest_rollups)
        keys = np.union1d(keys, newer)
        # Keys and line vectors are read under their append locks: nothing is appended until this commits.
        lock_table(conn, SAMPLE_KEYS)
        key_segments = samplekeys.read_segments(conn)
        stored_keys = samplekeys.concatenate(key_segments)
        live = np.isin(stored_keys.ids, keys)
        live[-1:] = True  # the highest key stays: appends number past it, and an id is never handed out twice
        lock_table(conn, LINE_VECTORS)
        vector_segments = linevectors.read_segments(conn)
        vectors = linevectors.concatenate(vector_segments)
        if vectors.ids.size:  # the highest vector stays for the same reason, and so does its key: none names a gone key
            live |= stored_keys.ids == vectors.keys[-1]
        live_keys = stored_keys.ids[live]
        labelsets = np.unique(stored_keys.labelsets[live])
        segments, node_live, live_functions = _live_tree(conn, FUNCTIONS, stored_keys.nodes[live])
        live_vectors = _live_vectors(vectors, live_keys)
        lock_table(conn, FUNCTION_APPENDS)
        function_segments = symbols.read_segments(conn)
        if function_segments:  # the highest function stays, as the highest key does
            live_functions = np.union1d(live_functions, function_segments[-1].ids[-1:])
        labelset_ids = np.array(conn.execute(select(SampleLabelset.id)).scalars().all(), dtype=np.int64)
        removed["sample_keys"] = _rewrite_rows(
            conn, key_segments, live_keys, SegmentKind.SAMPLE_KEYS, samplekeys.segment_row
        )
        removed["stack_nodes"] = _rewrite_segments(conn, FUNCTIONS, segments, node_live)
        removed["line_vectors"] = _rewrite_rows(
            conn, vector_segments, live_vectors, SegmentKind.LINE_VECTORS, linevectors.segment_row
        )
        removed["functions"] = _rewrite_rows(
            conn, function_segments, live_functions, SegmentKind.FUNCTIONS, symbols.segment_row
        )
        removed["labelsets"] = _delete(conn, SampleLabelset.__table__, labelset_ids[~np.isin(labelset_ids, labelsets)])
        highest = int(segments[-1].ids[-1]) if segments and len(segments[-1]) else 0
        removed["renumbered_nodes"] = 0
        if renumber.wanted(highest, int(node_live.sum())):
            done = renumber.renumber(conn, concatenate(read_segments(conn, FUNCTIONS)))
            removed["renumbered_nodes"] = done.highest_after
    store.reset_caches()
    log.info("garbage collected", extra=removed)
    return removed


def _live_tree(conn: Connection, tree_number: int, leaves: IntArray) -> tuple[list[Segment], BoolArray, IntArray]:
    """Under the tree's write lock: its segments, which of its nodes ``leaves`` reach (with their ancestors), as a
    flag per stored node in id order, and their frames.

    The highest node stays (with its ancestors): appends number past the highest stored node,
    and an id must never be handed out twice (other processes may still cache the old one).
    """
    lock_appends(conn, tree_number)
    segments = read_segments(conn, tree_number)
    tree = concatenate(segments)
    live = _closure(tree, np.concatenate([leaves, tree.ids[-1:]]))
    return segments, live, np.unique(tree.frames[live])


def _closure(tree: Segment, nodes: IntArray) -> BoolArray:
    """A flag per stored node (by position in ``tree``, whose ids increase) for ``nodes`` and all their ancestors.

    Worked on positions, not ids: arrays as long as the nodes stored, however high the ids (renumbering runs
    when they are high). The walk is the query's (:func:`server.store._treeindex.closure`), over a parent
    column of positions plus one, so that 0 stays the root (the sorted-set version took 22 s on a churny
    day's 17 M nodes)."""
    count = tree.ids.shape[0]
    parent_at, stored = positions_in(tree.ids, tree.parents)
    has_parent = tree.parents > ROOT
    if not bool(stored[has_parent].all()):
        raise RuntimeError("stack tree segments name parents that are not stored: collection stopped")
    up = np.zeros(count + 1, dtype=np.uint32)  # position + 1 of each node's parent, 0 for the root
    up[1:][has_parent] = parent_at[has_parent] + 1
    at, found = positions_in(tree.ids, nodes)
    mark = np.zeros(count + 1, dtype=bool)
    closure(mark, up, at[found] + 1)
    return mark[1:]


def _rewrite_segments(conn: Connection, tree: int, segments: list[Segment], live: BoolArray) -> int:
    """Segments holding dead nodes are written again without them (same ids, gaps allowed); returns nodes dropped.
    ``live``: a flag per node of ``segments``, in their order."""
    dropped = 0
    start = 0
    for segment in segments:
        keep = live[start : start + len(segment)]
        start += len(segment)
        if bool(keep.all()):
            continue
        dropped += int((~keep).sum())
        _delete_segment(conn, SegmentKind(tree), int(segment.ids[0]))
        if bool(keep.any()):
            kept = Segment(segment.ids[keep], segment.parents[keep], segment.frames[keep], segment.recursive[keep])
            conn.execute(insert(SegmentRow).values(**segment_row(SegmentKind(tree), kept.ids, encode(kept))))
    return dropped


def _live_vectors(vectors: linevectors.VectorRows, live_keys: IntArray) -> IntArray:
    """The ids of the vectors to keep: each live key's newest (an older one of the same key, written twice by
    processes filling it at once, goes), and the highest, since appends number past it."""
    newest = np.zeros(vectors.ids.shape[0], dtype=bool)
    if vectors.ids.size:
        # The last row of each key in id order is its newest.
        order = np.lexsort((vectors.ids, vectors.keys))
        last = np.ones(order.shape[0], dtype=bool)
        last[:-1] = vectors.keys[order][1:] != vectors.keys[order][:-1]
        newest[order[last]] = True
        newest[-1] = True
    kept: IntArray = vectors.ids[newest & (np.isin(vectors.keys, live_keys) | (vectors.ids == vectors.ids[-1:]))]
    return kept


class _Rows(Protocol):
    """A decoded segment of sample keys, line vectors or functions: ids in increasing order, and a subset."""

    ids: IntArray

    def take(self, which: npt.NDArray[Any]) -> Self: ...


def _rewrite_rows(
    conn: Connection,
    segments: Sequence[_Rows],
    live: IntArray,
    kind: SegmentKind,
    segment_row: Callable[[Any], dict[str, Any]],
) -> int:
    """Segments of ``kind`` holding dead rows (sample keys, line vectors, functions) are written again without them
    (same ids, gaps allowed); returns the rows dropped."""
    dropped = 0
    for segment in segments:
        keep = np.isin(segment.ids, live)
        if bool(keep.all()):
            continue
        dropped += int((~keep).sum())
        _delete_segment(conn, kind, int(segment.ids[0]))
        if bool(keep.any()):
            conn.execute(insert(SegmentRow).values(**segment_row(segment.take(keep))))
    return dropped


def _delete_segment(conn: Connection, kind: SegmentKind, first_id: int) -> None:
    conn.execute(delete(SegmentRow).where(SegmentRow.kind == kind, SegmentRow.first_id == first_id))


def _delete(conn: Connection, table: object, ids: IntArray) -> int:
    count = 0
    for part in chunks(ids.tolist(), 500):
        result = conn.execute(delete(table).where(table.c.id.in_(part)))  # type: ignore[attr-defined,arg-type]
        count += int(result.rowcount or 0)
    return count
