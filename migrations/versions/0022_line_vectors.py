"""each sample key's lines become a line vector instead of a leaf in a second prefix tree

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 (reviewed by hand)

A key's lines were its leaf in a prefix tree of ``(function, line, inlined)``
frames (kinds 1 and 3 of ``segments``), a fourth column of its key segment
(``sample_key_lines`` holding leaves found later for keys stored before line
data, 0015). On a high-churn profile that tree gained as many nodes as the
function tree, each walked, indexed, compressed and kept in memory by every
process, for a view most queries never ask for. A key now keeps its lines as
a vector aligned with its function stack, leaf first, ``line << 1 | inlined``
a frame (kind 5, ``server.store.linevectors``); the tree is built in memory
when a query asks for lines.

The upgrade walks every key's line leaf up to the root, all keys a depth level
at a time, and writes the vectors (ids 1, 2, ... in key order, 65,536 keys a
segment); a key without a leaf (stored before line data and not seen since)
gets none, as before. Key segments are rewritten without the leaf column, one
at a time, keeping their ids; the tree, its frames and ``sample_key_lines``
go. Memory: both trees and the frames as columns by id (~25 bytes a node; a
process held as much) and one key segment's vectors at a time. A key whose
line stack is not as deep as its function stack (a frame each, always) means
a corrupt store: the upgrade refuses it, naming the key, before it commits.

The downgrade rebuilds the frames (each distinct ``(function, line,
inlined)``, the function read off the key's function stack at the same
depth), the tree (a prefix tree of the keys' frame ids, root first, walked
a chunk of keys at a time as ingest walked it), the leaf column (-1 for a key
without a vector) and an empty ``sample_key_lines``. Memory: every vector
with its functions and frame ids (~24 bytes a stored frame), the function
tree's columns and the line tree's index (16 bytes a node). A vector whose
length is not its key's function-stack depth is refused as the upgrade
refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from alembic import op

from server.store import legacylines, linevectors, samplekeys, stackcodec
from server.store._treeindex import Index, depths

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IntArray = npt.NDArray[np.int64]
#: The ``segments`` kinds this migration reads and writes (``server.store.models.SegmentKind`` then).
FUNCTION_STACKS = 0
LINE_STACKS = 1
SAMPLE_KEYS = 2
LINE_FRAMES = 3
LINE_VECTORS = 5
#: Keys (vectors) or tree nodes or frames a segment written here holds at most.
CHUNK = 65_536

_segments = sa.table(
    "segments",
    sa.column("kind", sa.SmallInteger),
    sa.column("first_id", sa.BigInteger),
    sa.column("last_id", sa.BigInteger),
    sa.column("items", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


class CorruptStore(RuntimeError):
    """Line data that no store written by the server holds; the migration stops before changing anything."""


def _data(conn: sa.Connection, kind: int) -> Iterator[tuple[int, bytes]]:
    """``(first id, bytes)`` of every segment of ``kind``, in id order, read one at a time."""
    query = sa.select(_segments.c.first_id).where(_segments.c.kind == kind).order_by(_segments.c.first_id)
    for first in conn.execute(query).scalars().all():
        data = conn.execute(
            sa.select(_segments.c.data).where(_segments.c.kind == kind, _segments.c.first_id == first)
        ).scalar_one()
        yield int(first), bytes(data)


def _insert(conn: sa.Connection, kind: int, ids: IntArray, data: bytes) -> None:
    conn.execute(
        _segments.insert().values(
            kind=kind, first_id=int(ids[0]), last_id=int(ids[-1]), items=int(ids.shape[0]), data=data
        )
    )


def _replace(conn: sa.Connection, kind: int, first: int, data: bytes) -> None:
    conn.execute(_segments.update().where(_segments.c.kind == kind, _segments.c.first_id == first).values(data=data))


class _Tree:
    """A prefix tree's columns by node id (0, the root, has none): parent, frame, depth, and whether stored."""

    def __init__(self, conn: sa.Connection, kind: int) -> None:
        nodes = [stackcodec.decode(data) for _, data in _data(conn, kind)]
        ids = np.concatenate([n.ids for n in nodes]) if nodes else np.zeros(0, dtype=np.int64)
        parents = np.concatenate([n.parents for n in nodes]) if nodes else ids
        size = int(ids[-1]) + 1 if ids.size else 1
        self.parent = np.zeros(size, dtype=np.int64)
        self.frame = np.zeros(size, dtype=np.int64)
        self.depth = np.zeros(size, dtype=np.int32)  # as depths() takes it (the stack tree's depth column)
        self.known = np.zeros(size, dtype=bool)
        self.known[0] = True
        if ids.size:
            self.parent[ids] = parents
            self.frame[ids] = np.concatenate([n.frames for n in nodes])
            try:
                depths(self.depth, self.known, np.ascontiguousarray(parents), np.ascontiguousarray(ids))
            except ValueError as exc:
                raise CorruptStore(f"stack tree {kind}: {exc}") from None

    def stored(self, nodes: IntArray) -> npt.NDArray[np.bool_]:
        inside = (nodes >= 0) & (nodes < self.known.shape[0])
        found = np.zeros(nodes.shape[0], dtype=bool)
        found[inside] = self.known[nodes[inside]]
        return found

    def paths(self, leaves: IntArray) -> tuple[IntArray, IntArray]:
        """The frames from each leaf (stored) up to the root, leaf first, one path after another, and where each
        path starts (one more than the leaves). A depth level at a time: each round takes one frame of every
        path still that long."""
        lengths = self.depth[leaves]
        offsets = np.zeros(leaves.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        frames = np.zeros(int(offsets[-1]), dtype=np.int64)
        active = np.flatnonzero(lengths > 0)
        node = leaves[active]
        step = 0
        while active.size:
            frames[offsets[active] + step] = self.frame[node]
            node = self.parent[node]
            step += 1
            longer = lengths[active] > step
            active, node = active[longer], node[longer]
        return frames, offsets


def _same_depths(keys: IntArray, lengths: IntArray, functions: _Tree, nodes: IntArray) -> None:
    """Refuse keys whose line stack is not as deep as their function stack (``nodes``): a frame each, always."""
    missing = ~functions.stored(nodes)
    if missing.any():
        key = int(keys[missing][0])
        raise CorruptStore(f"sample key {key} has stack node {int(nodes[missing][0])}, not in the stack tree")
    wrong = functions.depth[nodes] != lengths
    if wrong.any():
        key = int(keys[wrong][0])
        raise CorruptStore(
            f"sample key {key} has {int(lengths[wrong][0])} frames of lines for a stack of "
            f"{int(functions.depth[nodes[wrong][0]])}: the store's line data is corrupt, and is not converted"
        )


def _vector_rows(first_id: int, keys: IntArray, offsets: IntArray, values: IntArray) -> linevectors.VectorRows:
    ids = first_id + np.arange(keys.shape[0], dtype=np.int64)
    return linevectors.VectorRows(ids, keys, offsets, values)


def upgrade() -> None:
    conn = op.get_bind()
    functions = _Tree(conn, FUNCTION_STACKS)
    tree = _Tree(conn, LINE_STACKS)
    frames = legacylines.concatenate_frames([legacylines.decode_frames(data) for _, data in _data(conn, LINE_FRAMES)])
    size = int(frames.ids[-1]) + 1 if len(frames) else 1
    value = np.zeros(size, dtype=np.int64)  # by frame id: line << 1 | inlined
    value[frames.ids] = (frames.lines << 1) | frames.inlined
    frame_known = np.zeros(size, dtype=bool)
    frame_known[frames.ids] = True
    fills = legacylines.read_line_fills(conn)
    pending: list[linevectors.VectorRows] = []
    written = 0  # vectors written so far: the next one's id is one more
    # A key segment's bytes are replaced in place, under the same first id, once read.
    for first, data in _data(conn, SAMPLE_KEYS):
        if not legacylines.is_legacy(data):
            continue  # already without the leaf column: holds no line data
        keys = legacylines.with_line_fills(legacylines.decode(data), fills)
        have = keys.line_nodes != legacylines.NO_LINES
        leaves = keys.line_nodes[have]
        unknown = ~tree.stored(leaves)
        if unknown.any():
            key = int(keys.ids[have][unknown][0])
            raise CorruptStore(f"sample key {key} has line leaf {int(leaves[unknown][0])}, not in the line tree")
        _same_depths(keys.ids[have], tree.depth[leaves], functions, keys.nodes[have])
        path, offsets = tree.paths(leaves)
        inside = (path >= 0) & (path < size)
        if not bool(inside.all()) or not bool(frame_known[path].all()):
            raise CorruptStore("the line tree has a node whose frame is not a stored line frame")
        if leaves.size:
            pending.append(_vector_rows(written + 1, keys.ids[have], offsets, value[path]))
            written += int(leaves.shape[0])
        while pending and sum(map(len, pending)) >= CHUNK:
            pending = _flush(conn, pending)
        rows = samplekeys.KeyRows(keys.ids, keys.hashes, keys.nodes, keys.labelsets)
        _replace(conn, SAMPLE_KEYS, first, samplekeys.encode(rows))
    while pending:
        pending = _flush(conn, pending)
    conn.execute(_segments.delete().where(_segments.c.kind.in_([LINE_STACKS, LINE_FRAMES])))
    op.drop_table("sample_key_lines")


def _flush(conn: sa.Connection, pending: list[linevectors.VectorRows]) -> list[linevectors.VectorRows]:
    """Write the first ``CHUNK`` pending vectors (or all, if fewer) as a segment; the rest stay pending."""
    rows = linevectors.concatenate(pending)
    count = min(CHUNK, len(rows))
    conn.execute(_segments.insert().values(**linevectors.segment_row(rows.take(np.arange(count)))))
    if count == len(rows):
        return []
    return [rows.take(np.arange(count, len(rows)))]


def downgrade() -> None:
    conn = op.get_bind()
    functions = _Tree(conn, FUNCTION_STACKS)
    vectors = linevectors.concatenate([linevectors.decode(data) for _, data in _data(conn, LINE_VECTORS)])
    # A key's later vector replaces an earlier one: keep the last of each key (vectors are in id order).
    last = len(vectors) - 1 - np.unique(vectors.keys[::-1], return_index=True)[1]
    vectors = vectors.take(np.sort(last)) if len(vectors) else vectors
    segments = [(first, samplekeys.decode(data)) for first, data in _data(conn, SAMPLE_KEYS)]
    keys = samplekeys.concatenate([rows for _, rows in segments])
    # Only the vectors of stored keys (a collected key's may linger), in key order.
    at = np.minimum(np.searchsorted(keys.ids, vectors.keys), max(len(keys) - 1, 0))
    stored = keys.ids[at] == vectors.keys if len(keys) else np.zeros(len(vectors), dtype=bool)
    order = np.flatnonzero(stored)[np.argsort(vectors.keys[stored], kind="stable")]
    vectors = vectors.take(order)
    nodes = keys.nodes[at[order]]
    _same_depths(vectors.keys, vectors.lengths, functions, nodes)
    called, offsets = functions.paths(nodes)
    # The frames: each distinct (function, line << 1 | inlined), numbered in that order from 1.
    by_frame = np.lexsort((vectors.values, called))
    first_of = np.ones(by_frame.shape[0], dtype=bool)
    first_of[1:] = (np.diff(called[by_frame]) != 0) | (np.diff(vectors.values[by_frame]) != 0)
    frame_ids = np.zeros(by_frame.shape[0], dtype=np.int64)
    frame_ids[by_frame] = np.cumsum(first_of)
    distinct = by_frame[first_of]
    for start in range(0, distinct.shape[0], CHUNK):
        part = distinct[start : start + CHUNK]
        ids = np.arange(start + 1, start + 1 + part.shape[0], dtype=np.int64)
        frame_rows = legacylines.FrameRows(ids, called[part], vectors.values[part] >> 1, vectors.values[part] & 1)
        _insert(conn, LINE_FRAMES, ids, legacylines.encode_frames(frame_rows))
    # The tree: the keys' frame ids, root first, walked a chunk of keys at a time against what is built so far.
    index = Index()
    function = np.zeros(frame_ids.shape[0] + 1, dtype=np.int32)  # the index's frames by node id: a node a frame at most
    leaves = np.zeros(len(vectors), dtype=np.int64)
    next_id = 1
    for start in range(0, len(vectors), CHUNK):
        stop = min(start + CHUNK, len(vectors))
        chunk = frame_ids[offsets[start] : offsets[stop]]
        walked = index.walk(chunk, offsets[start : stop + 1] - offsets[start], next_id, function, leaf_first=True)
        leaves[start:stop] = np.frombuffer(walked[0], dtype=np.int64)
        parents, frames = (np.frombuffer(b, dtype=np.int64) for b in walked[1:3])
        recursive = np.frombuffer(walked[4], dtype=np.uint8).astype(bool)
        ids = next_id + np.arange(parents.shape[0], dtype=np.int64)
        index.add(parents, frames, ids, function)
        for at_node in range(0, ids.shape[0], CHUNK):
            cut = slice(at_node, at_node + CHUNK)
            segment = stackcodec.Segment(ids[cut], parents[cut], frames[cut], recursive[cut])
            _insert(conn, LINE_STACKS, ids[cut], stackcodec.encode(segment))
        next_id += int(ids.shape[0])
    # The leaf column: every key's leaf, -1 for a key without a vector.
    line_nodes = np.full(len(keys), legacylines.NO_LINES, dtype=np.int64)
    line_nodes[at[order]] = leaves
    done = 0
    for first, rows in segments:
        legacy = legacylines.LegacyKeyRows(
            rows.ids, rows.hashes, rows.nodes, rows.labelsets, line_nodes[done : done + len(rows)]
        )
        _replace(conn, SAMPLE_KEYS, first, legacylines.encode(legacy))
        done += len(rows)
    conn.execute(_segments.delete().where(_segments.c.kind == LINE_VECTORS))
    op.create_table(
        "sample_key_lines",
        sa.Column("key_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line_node_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_sample_key_lines")),
    )
