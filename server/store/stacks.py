"""The stack prefix tree: every distinct stack of every profile, stored once.

A stack (root first) is a path in the tree; a sample stores only the id of
its leaf node. Scrapes of one service repeat the same stacks, so after the
first few scrapes ingest finds every stack in the in-memory index and
touches no table at all.

Nodes are stored as append-only compressed segments (``segments`` rows of
the tree's kind, layout in :mod:`server.store.stackcodec`), not one row each: a row and its
unique-index entry cost 34 bytes a node on SQLite and 116 on PostgreSQL, a
segment under 2. There is no unique index, so the process answers dedup
from memory: every segment is read at first use and the tree is kept as
numpy columns by node id (parent uint32, frame int32, recursive flag: 10
bytes a node with the ``known`` flag), and, once the process first
resolves stacks, as the C index of :mod:`server.store._treeindex` (each
node's children by frame, 8 bytes a node: it reads a node's frame from the
function column), which walks a profile's new stacks in one pass and numbers
the nodes they lack. A process that only answers queries (the API process
when ingest runs in worker processes) never builds the index: on a day when
every profile is new, 150 MB of its 18.8 M nodes. Queries use the same
columns: merging profiles means summing values per leaf id and
propagating sums to parents. A parent's id is always smaller
than its child's.

Concurrent writers (server replicas, ingest worker processes) stay as
correct as a unique index made them: a writer with new nodes takes the
tree's write lock (PostgreSQL: an advisory transaction lock; SQLite: the
database's write lock), reads the segments others appended since it last
looked, resolves its stacks again against them, and only then appends one
segment whose ids start past every node stored. So no ``(parent, frame)``
ever gets two ids. Nodes enter the memory index only once their segment
has committed: a rolled-back segment leaves no id behind.

The class is generic over what a frame is: ``tree`` 0 holds stacks of
function ids. A tree with no engine is kept in memory only, never stored: the
tree of ``(function, line)`` frames that line granularity builds from the
keys' line vectors (:mod:`server.store.linestacks`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from server.errors import IdsExhausted
from server.store import reserved, segmentcache, stackcodec
from server.store._treeindex import Index, closure, gather, mark_known
from server.store.appends import TREES, Appends
from server.store.appends import lock_appends as lock_table
from server.store.cachemarks import CacheMarks
from server.store.models import SegmentKind

IntArray = npt.NDArray[np.int64]
#: The frame column: a churny profile's new nodes are written to fresh pages, each page's first touch a fault, so
#: each byte a node saves there is worth ~19 us a profile of ~54,000 new nodes. (Readers that mix it with int64
#: arrays or pass it on as ``IntArray`` widen what they gather: ``.astype(np.int64)``.) No column holds depths
#: (4 bytes a node, 75 MB of a churny day's tree): the views that need a node's depth work it out.
Int32Array = npt.NDArray[np.int32]
#: The parent column: node ids stay below 2**32 (see ``NODE_LIMIT``), so 4 bytes a node rather than 8. Readers
#: widen what they gather (``.astype(np.int64)``), as for the frame column.
UInt32Array = npt.NDArray[np.uint32]
BoolArray = npt.NDArray[np.bool_]
ROOT = 0
FUNCTIONS = SegmentKind.FUNCTION_STACKS  # the ``tree`` number of stacks of function ids (its segments' kind)
LINES = SegmentKind.LINE_STACKS  # the ``tree`` number of the in-memory tree of line frames (server.store.linestacks)

#: Node ids stay below 2**32 (the index keeps them as 32-bit integers); frame ids below 2**31 (so the frame column
#: is int32), and depths too (the index's walk refuses a stack of 2**31 frames).
NODE_LIMIT = 1 << 32
_INDEX_IDS = 1 << 32  # what the C index itself takes (NODE_LIMIT is the store's rule: tests lower it)
FRAME_LIMIT = 1 << 31
#: Node ids the index is built from at a time (see :meth:`StackTree._build_index`): 24 MB of int64 arrays.
_INDEX_CHUNK = 1 << 20
#: How many times the node columns grow when full (see :meth:`StackTree._grow`).
_GROWTH = 4
#: The shares of the node id space whose crossing is logged as a warning.
_WARN_AT = (0.5, 0.75, 0.9)
log = logging.getLogger(__name__)


def _flatten(stacks: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray]:
    lengths = np.fromiter(map(len, stacks), dtype=np.int64, count=len(stacks))
    offsets = np.zeros(len(stacks) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    frames = np.fromiter(chain.from_iterable(stacks), dtype=np.int64, count=int(offsets[-1]))
    return frames, offsets


def _warn_on_crossing(before: int, after: int) -> None:
    """A warning when this process's appends take the highest node id past a half, three quarters or nine tenths
    of the id space: a collection gives back only the gaps below the highest (:mod:`server.store.renumber`), so
    where the live nodes themselves fill the space, the operator has until the last to act (docs/operations.md)."""
    for share in _WARN_AT:
        mark = int(NODE_LIMIT * share)
        if before < mark <= after:
            log.warning(
                "stack tree node ids running out",
                extra={"highest": after, "limit": NODE_LIMIT, "share": share},
            )


def positions_in(ids: IntArray, nodes: IntArray) -> tuple[IntArray, BoolArray]:
    """Where each of ``nodes`` sits in ``ids`` (stored node ids, increasing), and whether it is there at all
    (never the root, 0): how a collection, which has every stored node in id order but gaps between their ids,
    finds a node without columns as long as the highest id."""
    at = np.searchsorted(ids, nodes)
    found = (nodes > ROOT) & (at < ids.shape[0])
    found[found] = ids[at[found]] == nodes[found]
    return at, found


def lock_appends(conn: Connection, tree: int = FUNCTIONS) -> None:
    """Inside a writing transaction: wait for, then hold until commit, the right to change ``tree``'s segments."""
    lock_table(conn, TREES + tree)  # PostgreSQL advisory lock key of tree ``t``: ``TREES + t``


def read_segments(conn: Connection, tree: int = FUNCTIONS, above: int = ROOT) -> list[stackcodec.Segment]:
    """The tree's segments holding nodes past ``above``, in id order."""
    return [stackcodec.decode(data) for data in segmentcache.read_data(conn, SegmentKind(tree), above)]


def concatenate(segments: Sequence[stackcodec.Segment]) -> stackcodec.Segment:
    if not segments:
        empty = np.zeros(0, dtype=np.int64)
        return stackcodec.Segment(empty, empty, empty, np.zeros(0, dtype=bool))
    return stackcodec.Segment(
        ids=np.concatenate([s.ids for s in segments]),
        parents=np.concatenate([s.parents for s in segments]),
        frames=np.concatenate([s.frames for s in segments]),
        recursive=np.concatenate([s.recursive for s in segments]),
    )


@dataclass(slots=True)
class _Walk:
    """A batch of stacks walked against the index: every stack's leaf, and how many nodes they lack, numbered
    from ``first`` (not yet stored: provisional until their segment commits). The nodes themselves stay in
    the index's scratch, as its walk number ``walk``: the segment's bytes are made from there, and its commit
    writes them into the index and the columns from there, with no arrays of them in between."""

    first: int
    leaves: IntArray
    missing: int
    walk: int


@dataclass(frozen=True, slots=True)
class _Stacks:
    """A batch of stacks as :meth:`StackTree.resolve_arrays` was given them (walked again after a catch-up)."""

    frames: IntArray
    offsets: IntArray
    leaf_first: bool
    frame_of: IntArray | None


class StackTree:
    def __init__(self, engine: Engine | None, tree: int = FUNCTIONS, marks: CacheMarks | None = None) -> None:
        self._engine = engine  # None: a tree in memory only, whose new nodes are never stored
        self._tree = tree
        self._marks = marks  # what the set of caches this tree belongs to was filled under (None: on its own)
        self._lock = threading.RLock()
        self._index = Index()
        # Built from the columns when the process first resolves stacks (``_indexed``): queries never read it.
        self._indexed = False
        self._count = 0  # nodes loaded, the root excluded
        self._high = ROOT  # every segment whose nodes are at most this is loaded
        self._loaded = engine is None
        size = 1024
        self.parent: UInt32Array = np.zeros(size, dtype=np.uint32)  # the root's entry is never read: it has none
        self.function: Int32Array = np.zeros(size, dtype=np.int32)
        self.recursive = np.zeros(size, dtype=bool)
        self.known = np.zeros(size, dtype=bool)
        self.known[ROOT] = True

    @property
    def size(self) -> int:
        """Nodes loaded, the root excluded."""
        return self._count

    @property
    def indexed(self) -> bool:
        """Whether the dedup index is built: only once the process resolves stacks (queries never read it)."""
        return self._indexed

    # -- ingest side -------------------------------------------------------

    def resolve(self, stacks: Sequence[Sequence[int]]) -> list[int]:
        """Leaf node ids for stacks given root first as frame ids, creating missing nodes."""
        frames, offsets = _flatten(stacks)
        leaves: list[int] = self.resolve_arrays(frames, offsets).tolist()
        return leaves

    def resolve_arrays(
        self,
        frames: IntArray,
        offsets: IntArray,
        *,
        leaf_first: bool = False,
        appends: Appends | None = None,
        frame_of: IntArray | None = None,
    ) -> IntArray:
        """Leaf node ids for stacks ``frames[offsets[i]:offsets[i + 1]]`` (root first, or leaf first),
        creating missing nodes: in ``appends`` (the profile's one write transaction; the new nodes are
        handed out, but enter the index only once it commits), or else in a transaction of their own.
        With ``frame_of``, ``frames`` holds positions in it, and ``frame_of`` the frames (a profile's line
        entries and their functions' ids: the walk maps them, with no array of every frame's id made first).

        Every stack is walked, known or not: the walk is one C pass over the
        batch's frames (:mod:`server.store._treeindex`), cheaper than the
        per-stack ``bytes`` keys and dictionary a leaf-by-key shortcut took
        (measured in docs/storage-history.md), and it holds no memory of its own.
        """
        stacks = _Stacks(
            np.ascontiguousarray(frames, dtype=np.int64),
            np.ascontiguousarray(offsets, dtype=np.int64),
            leaf_first,
            None if frame_of is None else np.ascontiguousarray(frame_of, dtype=np.int64),
        )
        with self._lock:
            if not self._loaded:
                with self._connect() as conn:
                    self._catch_up(conn)
            walk = self._walk(stacks)
            if walk.missing:
                if self._engine is None:  # in memory only: the nodes are the tree's at once
                    self._commit_walk(walk)
                elif appends is not None:
                    return self._append(stacks, walk, appends).leaves
                else:
                    with Appends(self._engine) as own:
                        walk = self._append(stacks, walk, own)
            return walk.leaves

    def _connect(self) -> Connection:
        if self._engine is None:
            raise RuntimeError("a stack tree kept in memory only has no database to read")
        return self._engine.connect()

    def _walk(self, stacks: _Stacks) -> _Walk:
        """The stacks down the loaded tree; what they lack numbered past every loaded node.

        :class:`~server.errors.IdsExhausted` when they would be numbered past the last id, before anything is
        written: ids are handed out past the highest (a collection gives the gaps back only once it renumbers,
        :mod:`server.store.renumber`), so a tree that has handed out every id takes known stacks only."""
        first = self._high + 1
        self._build_index()
        try:
            # Known stacks never read the first new id, so a full tree still walks them (the index takes ids below
            # 2**32: a full one's next would not be).
            leaves, missing, walk = self._index.walk(
                stacks.frames,
                stacks.offsets,
                min(first, _INDEX_IDS - 1),
                self.function,
                leaf_first=stacks.leaf_first,
                nodes=False,
                frame_of=stacks.frame_of,
            )
            if missing and first + missing > NODE_LIMIT:
                raise OverflowError
        except OverflowError:
            raise IdsExhausted(
                f"the stack tree has handed out all {NODE_LIMIT:,} node ids (the highest is {self._high:,}): "
                "profiles that bring new stacks cannot be stored until an operator acts, see docs/operations.md"
            ) from None
        # The leaves are the caller's to change: a copy, not a view of the bytes.
        return _Walk(first, np.frombuffer(leaves, dtype=np.int64).copy(), missing, walk)

    def _append(self, stacks: _Stacks, walk: _Walk, appends: Appends) -> _Walk:
        """Under the tree's write lock: catch up with other writers, then store what is still missing as a segment
        (added to the index once ``appends`` commits)."""
        conn = appends.segments(self)
        # Another writer appended since (the newest segment is past this process's): walk again against its nodes.
        if appends.appended_past(TREES + self._tree, self._high) and self._catch_up(conn, guarded=appends.guarded):
            walk = self._walk(stacks)
        if walk.missing:
            raw, flags = self._index.segment_columns(walk.walk)
            data = stackcodec.encode_columns(raw, flags, walk.missing, walk.first)
            last = walk.first + walk.missing - 1
            row = segmentcache.span_row(SegmentKind(self._tree), walk.first, last, walk.missing, data)
            appends.add_segment(row)
            appends.after_commit(lambda: self._committed(walk, data))
        return walk

    def _committed(self, walk: _Walk, data: bytes) -> None:
        """A segment this process appended has committed: its ids may be handed out. Unless a query of another
        thread read it from the database in the meantime (it is then loaded already). Its nodes go in from
        the walk's scratch; should another walk have replaced them (a resolve of this tree between the walk
        and the commit), from the segment's own bytes."""
        with self._lock:
            if walk.first <= self._high:
                return
            try:
                self._commit_walk(walk)
            except ValueError:
                self._add(stackcodec.decode(data))

    def _commit_walk(self, walk: _Walk) -> None:
        """The walk's new nodes into the index and the columns, from its scratch (``ValueError`` if another walk
        has replaced it)."""
        last = walk.first + walk.missing - 1
        self._grow(last + 1)
        self._index.commit(walk.walk, self.parent, self.function, self.recursive, self.known)
        self._count += walk.missing
        if self._engine is not None:
            _warn_on_crossing(walk.first - 1, last)
        self._high = last

    # -- loading -------------------------------------------------------------

    def _catch_up(self, conn: Connection, *, guarded: bool = False) -> bool:
        """Read the segments appended past what this process has loaded (all of them, the first time);
        whether there were any. Unless ``guarded`` (see ``SegmentCache._catch_up``), refused with
        :class:`~server.errors.Renumbered` when they are of another node generation than the caches'."""
        kind = SegmentKind(self._tree)
        if self._marks is None or guarded:
            stored = segmentcache.read_data(conn, kind, self._high)
        else:
            stored = self._marks.read(conn, lambda: segmentcache.read_data(conn, kind, self._high), nodes=True)
        if not self._loaded and stored:  # room for half as many nodes again before anything grows
            spans = [stackcodec.span(data) for data in stored]
            size = spans[-1][0] + spans[-1][1] + sum(count for _, count in spans) // 2
            self._grow(size)
        self._loaded = True
        # Decoded and added one at a time: a whole tree decoded at once (25 bytes a node) and then concatenated
        # (25 more) was a first load's peak memory, 0.9 GB of a churny day's 18.8 M nodes.
        for data in stored:
            self._add(stackcodec.decode(data))
        return bool(stored)

    def _build_index(self) -> None:
        """The index of every loaded node, from the columns, the first time the process resolves stacks. In id
        order, as the segments were: parents come first. A chunk of ids at a time, so the int64 arrays the
        index takes are never the whole tree's."""
        if self._indexed:
            return
        try:
            self._index.reserve(self._high + 1 + self._count // 2)  # room for half as many again, as a load grows
            for low in range(ROOT + 1, self._high + 1, _INDEX_CHUNK):
                ids = np.flatnonzero(self.known[low : min(low + _INDEX_CHUNK, self._high + 1)]) + low
                if ids.size:
                    parents = self.parent[ids].astype(np.int64)
                    self._index.add(parents, self.function[ids].astype(np.int64), ids, self.function)
        except BaseException:
            self._index = Index()  # half built (out of memory): the next resolve starts again from nothing
            raise
        self._indexed = True

    def _add(self, segment: stackcodec.Segment) -> None:
        """Nodes (in increasing id order, all above those loaded) into the columns, and the index once it is
        built; each parent checked to be stored, or earlier in the segment (in C, one pass)."""
        columns = (segment.ids, segment.parents, segment.frames)
        ids, parents, frames = (np.ascontiguousarray(c, dtype=np.int64) for c in columns)
        if ids.size == 0:
            return
        if int(frames.min()) < 0 or int(frames.max()) >= FRAME_LIMIT:
            raise stackcodec.CorruptSegment("a stack segment holds a frame id outside [0, 2**31)")
        first, last = int(ids[0]), int(ids[-1])
        if first <= self._high or last >= _INDEX_IDS:  # (the index refused these; the columns would take them)
            raise stackcodec.CorruptSegment(
                f"a stack segment holds node ids from {first} to {last}, not all above the {self._high} loaded "
                f"and below 2**32"
            )
        self._grow(last + 1)
        # A run of consecutive ids (every segment but one garbage collection rewrote) is written as a slice.
        at: slice | IntArray = slice(first, last + 1) if last - first + 1 == ids.shape[0] else ids
        try:  # checks every parent is stored (or earlier in the segment) before it writes anything
            mark_known(self.known, parents, ids)
        except ValueError as exc:
            raise stackcodec.CorruptSegment(str(exc)) from None
        if self._indexed:
            self._index.add(parents, frames, ids, self.function)  # writes the function column: the index reads it
        else:
            self.function[at] = frames
        self.parent[at] = parents
        self.recursive[at] = segment.recursive
        self._count += ids.shape[0]
        self._high = max(self._high, last)

    def _grow(self, size: int) -> None:
        """Columns for ids below ``size``, at least ``_GROWTH`` times as many. New arrays, not resized ones:
        a query may hold the old ones. Up to ``reserved.RESERVED`` nodes they are longer views of the mappings
        already there (``reserved.grown``); past it, growing copies what is there, and the copy is what a new node
        costs most after its own bytes (fresh pages are faulted in: ~2-5 us a page here), so the columns grow
        by 4x rather than 2x: each node is copied 1/3 of a time on average instead of once. The spare room is
        untouched zero pages: address space, not memory. Ids past those loaded read as parent 0,
        never used: :meth:`ensure` refuses what ``known`` does not hold."""
        current = self.parent.shape[0]
        if size <= current:
            return
        new = max(size, current * _GROWTH)
        self.parent = reserved.grown(self.parent, new)
        self.function = reserved.grown(self.function, new)
        self.recursive = reserved.grown(self.recursive, new)
        self.known = reserved.grown(self.known, new)

    # -- query side --------------------------------------------------------

    def ensure(self, nodes: IntArray) -> None:
        """Make sure ``nodes`` and all their ancestors are loaded.

        Another process (a second server replica) may have written them: what
        this process has not seen is read as the segments appended since.
        """
        with self._lock:
            wanted = nodes[nodes > ROOT]
            if not wanted.size:
                return
            if not self._loaded or (self._engine is not None and int(wanted.max()) > self._high):
                with self._connect() as conn:
                    self._catch_up(conn)
            self._grow(int(wanted.max()) + 1)
            lost = np.unique(wanted[~self.known[wanted]])
            if lost.size:
                raise LookupError(f"stack nodes {lost[:5].tolist()} are missing from the database")

    def closure_mask(self, leaves: IntArray) -> BoolArray:
        """A flag per node id up to the highest loaded: set for ``leaves`` (loaded, see :meth:`ensure`) and
        every ancestor of them, the root excluded. Each ancestor is visited once: a leaf's walk up stops at
        the first flagged node (in C, :func:`server.store._treeindex.closure`)."""
        size = max(self._high, int(leaves.max()) if leaves.size else 0) + 1
        mark = np.zeros(size, dtype=bool)
        self._grow(size)  # the parent column has room for every id the mark has
        closure(mark, self.parent, np.ascontiguousarray(leaves, dtype=np.int64))
        return mark

    def gather(
        self, mark: BoolArray, *, with_ids: bool = True
    ) -> tuple[IntArray | None, Int32Array, Int32Array, BoolArray, Int32Array]:
        """The marked nodes (a :meth:`closure_mask`) as a call tree's arrays, in id order: their ids (unless
        ``with_ids`` is false: None), each one's parent as an index into them (-1 for the root's children),
        function and recursive flag; and a map from each marked id to its index (int32, by id; other entries are
        not set). Parents and functions are int32 (positions and frames are below 2**31): half the bytes a node
        reached of int64. One pass, in C."""
        count = int(np.count_nonzero(mark))
        node_ids = np.empty(count, dtype=np.int64) if with_ids else None
        parent = np.empty(count, dtype=np.int32)
        function = np.empty(count, dtype=np.int32)
        recursive = np.empty(count, dtype=bool)
        position = np.empty(mark.shape[0], dtype=np.int32)
        self._grow(mark.shape[0])  # the columns have room for every id the mark has
        gather(mark, self.parent, self.function, self.recursive, position, node_ids, parent, function, recursive)
        return node_ids, parent, function, recursive, position

    def ancestors_closure(self, nodes: IntArray) -> IntArray:
        """``nodes`` plus every ancestor of them, sorted, the root excluded."""
        self.ensure(nodes)
        return np.flatnonzero(self.closure_mask(nodes)).astype(np.int64)
