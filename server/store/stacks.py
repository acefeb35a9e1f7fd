"""The stack prefix tree: every distinct stack of every profile, stored once.

A stack (root first) is a path in the tree; a sample stores only the id of
its leaf node. Scrapes of one service repeat the same stacks, so after the
first few scrapes ingest finds every stack in :attr:`StackTree._stacks` and
touches no table at all.

Nodes are stored as append-only compressed segments (``stack_segments``,
layout in :mod:`server.store.stackcodec`), not one row each: a row and its
unique-index entry cost 34 bytes a node on SQLite and 116 on PostgreSQL, a
segment under 2. There is no unique index, so the process answers dedup
from memory: every segment is read at first use and the tree is kept as
numpy columns by node id (parent, frame, depth, recursive flag), with a
sorted index of ``(parent, frame)`` pairs. Queries use the same columns:
merging profiles means summing values per leaf id and propagating sums to
parents. A parent's id is always smaller than its child's.

Concurrent writers (server replicas, ingest worker processes) stay as
correct as a unique index made them: a writer with new nodes takes the
tree's write lock (PostgreSQL: an advisory transaction lock; SQLite: the
database's write lock), reads the segments others appended since it last
looked, resolves its stacks again against them, and only then appends one
segment whose ids start past every node stored. So no ``(parent, frame)``
ever gets two ids. Nodes enter the memory index only once their segment
has committed: a rolled-back segment leaves no id behind.

The class is generic over what a frame is: ``tree`` 0 holds stacks of
function ids; another tree (frames of ``(function, line)`` ids, say) is a
second instance with its own ``tree`` number and node ids.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, insert, select, text, update

from server.store import stackcodec
from server.store.models import StackSegment, StoreState
from server.store.state import EPOCH

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ROOT = 0
FUNCTIONS = 0  # the ``tree`` number of stacks of function ids
LINES = 1  # the ``tree`` number of stacks of (function, line) frame ids (server.store.lineframes)

#: PostgreSQL advisory lock key of tree ``t``'s appends is ``APPEND_LOCK + t`` (GC's is 7_299_999_999).
APPEND_LOCK = 7_299_999_900
#: Distinct stacks whose leaf is remembered by key; past it the shortcut starts again empty.
MAX_CACHED_STACKS = 500_000
#: Frames and parents are packed into one int64 key: frame ids below 2**31, node ids below 2**32.
_FRAME_BITS = 31
_FRAME_LIMIT = 1 << _FRAME_BITS
_NODE_LIMIT = 1 << 32


def _pack(parents: IntArray, frames: IntArray) -> IntArray:
    if frames.size and (int(frames.min()) < 0 or int(frames.max()) >= _FRAME_LIMIT):
        raise ValueError(f"stack frame ids must be in [0, 2**{_FRAME_BITS})")
    if parents.size and int(parents.max()) >= _NODE_LIMIT:
        raise ValueError("the stack tree has passed 2**32 nodes")
    packed: IntArray = (parents << _FRAME_BITS) | frames
    return packed


class PairIndex:
    """Node ids by packed ``(parent, frame)``: a big sorted pair of arrays plus a small sorted one for
    recent additions, merged when the small one passes a quarter of the big. 16 bytes a node, against
    ~200 for a dictionary entry of two Python ints; lookups are one ``searchsorted`` per batch."""

    def __init__(self) -> None:
        empty = np.zeros(0, dtype=np.int64)
        self._keys, self._ids = empty, empty
        self._new_keys, self._new_ids = empty, empty

    def __len__(self) -> int:
        return int(self._keys.shape[0] + self._new_keys.shape[0])

    def lookup(self, keys: IntArray) -> IntArray:
        """The node id of each key, -1 where there is none."""
        found = np.full(keys.shape[0], -1, dtype=np.int64)
        for sorted_keys, ids in ((self._keys, self._ids), (self._new_keys, self._new_ids)):
            if sorted_keys.size == 0:
                continue
            at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.shape[0] - 1)
            hit = sorted_keys[at] == keys
            found[hit] = ids[at[hit]]
        return found

    def add(self, keys: IntArray, ids: IntArray) -> None:
        """Only the new keys are sorted; they are merged into the sorted arrays in one linear pass each."""
        order = np.argsort(keys, kind="stable")
        keys, ids = keys[order], ids[order]
        new_keys, new_ids = _merge(self._new_keys, self._new_ids, keys, ids)
        if new_keys.shape[0] > max(65_536, self._keys.shape[0] // 4):
            self._keys, self._ids = _merge(self._keys, self._ids, new_keys, new_ids)
            empty = np.zeros(0, dtype=np.int64)
            self._new_keys, self._new_ids = empty, empty
            return
        self._new_keys, self._new_ids = new_keys, new_ids


def _merge(keys: IntArray, ids: IntArray, more_keys: IntArray, more_ids: IntArray) -> tuple[IntArray, IntArray]:
    """Two sorted key arrays (with their ids) as one, without sorting again."""
    if keys.size == 0:
        return more_keys, more_ids
    at = np.searchsorted(keys, more_keys, side="right")
    return np.insert(keys, at, more_keys), np.insert(ids, at, more_ids)


def _flatten(stacks: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray]:
    lengths = np.fromiter(map(len, stacks), dtype=np.int64, count=len(stacks))
    offsets = np.zeros(len(stacks) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    frames = np.fromiter(chain.from_iterable(stacks), dtype=np.int64, count=int(offsets[-1]))
    return frames, offsets


def _first_occurrence(owner: IntArray, frames: IntArray) -> BoolArray:
    """Per position, whether its frame is the first of that frame in its owner's stack (positions in
    stack order): the others are recursive, their function already among their ancestors."""
    keys = (owner << _FRAME_BITS) | frames
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.ones(keys.shape[0], dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    first = np.empty(keys.shape[0], dtype=bool)
    first[order] = starts
    return first


def lock_appends(conn: Connection, tree: int = FUNCTIONS) -> None:
    """Inside a writing transaction: wait for, then hold until commit, the right to change ``tree``'s segments."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK + tree})
    else:  # a no-op write takes SQLite's one write lock, and the reads after it see every commit
        conn.execute(update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value))


def read_segments(conn: Connection, tree: int = FUNCTIONS, above: int = ROOT) -> list[stackcodec.Segment]:
    """The tree's segments holding nodes past ``above``, in id order."""
    rows = conn.execute(
        select(StackSegment.data)
        .where(StackSegment.tree == tree, StackSegment.first_node > above)
        .order_by(StackSegment.first_node)
    ).scalars()
    return [stackcodec.decode(bytes(data)) for data in rows]


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


class StackTree:
    def __init__(self, engine: Engine, tree: int = FUNCTIONS) -> None:
        self._engine = engine
        self._tree = tree
        self._lock = threading.RLock()
        self._stacks: dict[Hashable, int] = {}
        self._index = PairIndex()
        self._high = ROOT  # every segment whose nodes are at most this is loaded
        self._loaded = False
        size = 1024
        self.parent: IntArray = np.full(size, -1, dtype=np.int64)
        self.function: IntArray = np.zeros(size, dtype=np.int64)
        self.depth: IntArray = np.zeros(size, dtype=np.int64)
        self.recursive = np.zeros(size, dtype=bool)
        self.known = np.zeros(size, dtype=bool)
        self.known[ROOT] = True

    @property
    def size(self) -> int:
        """Nodes loaded, the root excluded."""
        return len(self._index)

    # -- ingest side -------------------------------------------------------

    def cached_stack(self, key: Hashable) -> int | None:
        return self._stacks.get(key)

    def resolve(self, keys: Sequence[Hashable], stacks: Sequence[Sequence[int]]) -> list[int]:
        """Leaf node ids for stacks given root first as frame ids, creating missing nodes."""
        frames, offsets = _flatten(stacks)
        leaves: list[int] = self.resolve_arrays(keys, frames, offsets).tolist()
        return leaves

    def resolve_arrays(self, keys: Sequence[Hashable], frames: IntArray, offsets: IntArray) -> IntArray:
        """Leaf node ids for stacks ``frames[offsets[i]:offsets[i + 1]]`` (root first), creating missing nodes.

        ``keys`` are the caller's compact names for the same stacks; they are
        remembered so the next profile with these stacks skips the walk. The
        walk is vectorised: one index lookup per depth level for all stacks.
        """
        frames = frames.astype(np.int64, copy=False)
        lengths = np.diff(offsets).astype(np.int64)
        nodes = np.zeros(lengths.shape[0], dtype=np.int64)
        matched = np.zeros(lengths.shape[0], dtype=np.int64)
        with self._lock:
            if not self._loaded:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            self._match(frames, offsets, lengths, nodes, matched, np.arange(lengths.shape[0]))
            pending = np.flatnonzero(matched < lengths)
            if pending.size:
                self._append(frames, offsets, lengths, nodes, matched, pending)
            if len(self._stacks) + len(keys) > MAX_CACHED_STACKS:
                self._stacks.clear()
            self._stacks.update(zip(keys, nodes.tolist(), strict=True))
            return nodes

    def _match(
        self,
        frames: IntArray,
        offsets: IntArray,
        lengths: IntArray,
        nodes: IntArray,
        matched: IntArray,
        which: IntArray,
    ) -> None:
        """Walk the stacks ``which`` down the known tree from where they stand, one level at a time."""
        active = which[matched[which] < lengths[which]]
        while active.size:
            found = self._index.lookup(_pack(nodes[active], frames[offsets[active] + matched[active]]))
            hit = found >= 0
            active = active[hit]
            nodes[active] = found[hit]
            matched[active] += 1
            active = active[matched[active] < lengths[active]]

    def _append(
        self,
        frames: IntArray,
        offsets: IntArray,
        lengths: IntArray,
        nodes: IntArray,
        matched: IntArray,
        pending: IntArray,
    ) -> None:
        """Under the tree's write lock: catch up with other writers, then store what is still missing as a segment."""
        segment: stackcodec.Segment | None = None
        with self._engine.begin() as conn:
            lock_appends(conn, self._tree)
            if self._catch_up(conn):  # another writer appended since: walk again against its nodes
                self._match(frames, offsets, lengths, nodes, matched, pending)
                pending = pending[matched[pending] < lengths[pending]]
            if pending.size:
                segment, leaves, depth = self._new_nodes(frames, offsets, lengths, nodes, matched, pending)
                first, last = int(segment.ids[0]), int(segment.ids[-1])
                conn.execute(
                    insert(StackSegment).values(
                        tree=self._tree,
                        first_node=first,
                        last_node=last,
                        nodes=len(segment),
                        data=stackcodec.encode(segment),
                    )
                )
        if segment is not None:  # committed: now its ids may be handed out
            self._add(segment, depth)
            nodes[pending] = leaves

    def _new_nodes(
        self,
        frames: IntArray,
        offsets: IntArray,
        lengths: IntArray,
        nodes: IntArray,
        matched: IntArray,
        pending: IntArray,
    ) -> tuple[stackcodec.Segment, IntArray, IntArray]:
        """The nodes the ``pending`` stacks lack, numbered past every stored node, and each stack's leaf.

        Stacks sharing a new prefix share its nodes: step ``k`` of every stack's
        missing tail is keyed by (parent, frame), the parent being a stored node
        at step 0 and the previous step's new node after it. Ids go in order of
        (first stack needing the node, step): along a new stack they count up
        one by one, so most parents are the node just before (a column of 1s).
        """
        counts = lengths[pending] - matched[pending]
        starts = offsets[pending] + matched[pending]
        total = int(counts.sum())
        owner = np.repeat(np.arange(pending.shape[0]), counts)  # index into pending, in stack order
        step = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        position = starts[owner] + step
        frame = frames[position]
        # Recursive: the frame occurs higher up its own stack (stored part included).
        whole_lengths = lengths[pending]
        whole_starts = np.cumsum(whole_lengths) - whole_lengths
        whole = np.repeat(np.arange(pending.shape[0]), whole_lengths)
        whole_at = (
            np.arange(whole.shape[0])
            - np.repeat(whole_starts, whole_lengths)
            + np.repeat(offsets[pending], whole_lengths)
        )
        first = _first_occurrence(whole, frames[whole_at])
        skip = np.repeat(whole_starts + matched[pending], counts)
        recursive_at = ~first[skip + step]

        base = self._high + 1  # temporary id t is written base + t, above every stored node
        temp = np.zeros(total, dtype=np.int64)
        temp_parent: list[IntArray] = []
        temp_frame: list[IntArray] = []
        temp_owner: list[IntArray] = []
        temp_step: list[IntArray] = []
        temp_recursive: list[BoolArray] = []
        made = 0
        previous = np.zeros(0, dtype=np.int64)
        by_step = np.argsort(step.astype(np.int32), kind="stable")  # positions grouped by step, stack order kept
        bounds = np.searchsorted(step[by_step], np.arange(int(counts.max()) + 1))
        for k in range(int(counts.max())):
            at = by_step[bounds[k] : bounds[k + 1]]
            parents = nodes[pending[owner[at]]] if k == 0 else base + temp[previous[owner[at]]]
            keys = _pack(parents, frame[at])
            unique, first_at, inverse = np.unique(keys, return_index=True, return_inverse=True)
            temp[at] = made + inverse.reshape(-1)
            picked = at[first_at]
            temp_parent.append(parents[first_at])
            temp_frame.append(frame[picked])
            temp_owner.append(owner[picked])
            temp_step.append(np.full(unique.shape[0], k, dtype=np.int64))
            temp_recursive.append(recursive_at[picked])
            made += unique.shape[0]
            previous = np.full(pending.shape[0], -1, dtype=np.int64)
            previous[owner[at]] = at
        parent = np.concatenate(temp_parent)
        order = np.lexsort((np.concatenate(temp_step), np.concatenate(temp_owner)))
        final = np.empty(made, dtype=np.int64)
        final[order] = base + np.arange(made)
        new_parent = np.where(parent >= base, final[np.maximum(parent - base, 0)], parent)
        ids = final[order]
        segment = stackcodec.Segment(
            ids=ids,
            parents=new_parent[order],
            frames=np.concatenate(temp_frame)[order],
            recursive=np.concatenate(temp_recursive)[order],
        )
        depth = matched[pending][np.concatenate(temp_owner)[order]] + np.concatenate(temp_step)[order] + 1
        last_of_stack = np.cumsum(counts) - 1
        leaves = final[temp[last_of_stack]]
        return segment, leaves, depth

    # -- loading -------------------------------------------------------------

    def _catch_up(self, conn: Connection) -> bool:
        """Read the segments appended past what this process has loaded (all of them, the first time);
        whether there were any."""
        segments = read_segments(conn, self._tree, self._high)
        self._loaded = True
        if segments:
            self._add(concatenate(segments))
        return bool(segments)

    def _add(self, segment: stackcodec.Segment, depth: IntArray | None = None) -> None:
        """Nodes (in increasing id order, all above those loaded) into the columns and the index;
        ``depth`` when the caller knows it, else derived from the parents."""
        ids, parents = segment.ids, segment.parents
        if ids.size == 0:
            return
        self._grow(int(ids[-1]) + 1)
        self.parent[ids] = parents
        self.function[ids] = segment.frames
        self.recursive[ids] = segment.recursive
        if depth is None:
            depth = self._depths(segment)
        self.depth[ids] = depth
        self.known[ids] = True
        self._index.add(_pack(parents, segment.frames), ids)
        self._high = max(self._high, int(ids[-1]))

    def _depths(self, segment: stackcodec.Segment) -> IntArray:
        """Depth from the parents, by pointer jumping: a parent loaded before has its depth; for one in
        the segment, each pass adds the depth gathered so far at the node pointed to and points twice
        as far up, so a chain of any length takes log2 of it passes over the segment."""
        ids, parents = segment.ids, segment.parents
        unknown_parent = ~self.known[parents]
        depth = np.where(unknown_parent, 1, self.depth[parents] + 1)
        inside = np.flatnonzero(unknown_parent)
        at = np.searchsorted(ids, parents[inside])
        if inside.size and bool(
            ((at >= ids.shape[0]) | (ids[np.minimum(at, ids.shape[0] - 1)] != parents[inside])).any()
        ):
            raise stackcodec.CorruptSegment("a stack segment names a parent node that is not stored")
        pointer = np.full(ids.shape[0], -1, dtype=np.int64)
        pointer[inside] = at
        live = inside
        while live.size:
            up = pointer[live]
            depth[live] += depth[up]
            pointer[live] = pointer[up]
            live = live[pointer[live] >= 0]
        return depth

    def _grow(self, size: int) -> None:
        current = self.parent.shape[0]
        if size <= current:
            return
        new = max(size, current * 2)
        self.parent = np.concatenate([self.parent, np.full(new - current, -1, dtype=np.int64)])
        self.function = np.concatenate([self.function, np.zeros(new - current, dtype=np.int64)])
        self.depth = np.concatenate([self.depth, np.zeros(new - current, dtype=np.int64)])
        self.recursive = np.concatenate([self.recursive, np.zeros(new - current, dtype=bool)])
        self.known = np.concatenate([self.known, np.zeros(new - current, dtype=bool)])

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
            if not self._loaded or int(wanted.max()) > self._high:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            self._grow(int(wanted.max()) + 1)
            lost = np.unique(wanted[~self.known[wanted]])
            if lost.size:
                raise LookupError(f"stack nodes {lost[:5].tolist()} are missing from the database")

    def closure_mask(self, leaves: IntArray) -> BoolArray:
        """A flag per node id up to the highest loaded: set for ``leaves`` (loaded, see :meth:`ensure`) and
        every ancestor of them, the root excluded. Each ancestor is visited once: a walk stops at flagged
        nodes, and each level's frontier is deduplicated with a scratch array instead of a sort."""
        size = max(self._high, int(leaves.max()) if leaves.size else 0) + 1
        mark = np.zeros(size, dtype=bool)
        scratch = np.zeros(size, dtype=np.int64)
        frontier = leaves[leaves > ROOT]
        parent = self.parent
        while frontier.size:
            frontier = frontier[~mark[frontier]]
            scratch[frontier] = np.arange(frontier.shape[0])
            frontier = frontier[scratch[frontier] == np.arange(frontier.shape[0])]  # one of each
            mark[frontier] = True
            frontier = parent[frontier]
            frontier = frontier[frontier > ROOT]
        return mark

    def ancestors_closure(self, nodes: IntArray) -> IntArray:
        """``nodes`` plus every ancestor of them, sorted, the root excluded."""
        self.ensure(nodes)
        return np.flatnonzero(self.closure_mask(nodes)).astype(np.int64)
