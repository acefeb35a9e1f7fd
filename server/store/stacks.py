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
numpy columns by node id (parent, frame, depth, recursive flag). Queries
use the same columns: merging profiles means summing values per leaf id and
propagating sums to parents. A parent's id is always smaller than its child's.

Writers also keep an index (built at the first write, so a process that only
answers queries never pays for it): every node under a 63-bit hash of its
whole path from the root, in a :class:`~server.store.hashindex.HashIndex`.
A path hash is a sum of per-frame terms, so the hashes of every prefix of
every stack of a profile come from one running sum, and all of them are
looked up at once: no walk one depth level at a time. A hit is verified
against the columns (its frame, and its parent being the previous prefix's
node), so a hash collision can never join two stacks; the rare node whose
hash another node already holds is kept in a small dictionary by ``(parent,
frame)`` instead, which the verification falls back to.

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

import itertools
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, insert, select, text, update

from server.store import stackcodec
from server.store.hashindex import NodeIndex, capacity_for, first_of_equal, mix
from server.store.models import StackSegment, StoreState
from server.store.state import EPOCH

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U64 = npt.NDArray[np.uint64]
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


#: Path hashes: a node at depth ``d`` (root 0) whose frames from the root are ``f_0 .. f_{d-1}`` sums
#: ``mix(f_j) * _BASE**j``; its index key mixes that sum with ``d``. Sums of terms make every prefix's
#: hash one running sum (a ``cumsum``) over a stack's frames.
_BASE = np.uint64(0x9E3779B97F4A7C15)
_DEPTH = np.uint64(0xD6E8FEB86659FD93)
_POWERS: list[U64] = [np.ones(1, dtype=np.uint64)]  # one table, replaced when it grows


def _power(exponents: IntArray) -> U64:
    """``_BASE ** e`` (mod 2**64) for every exponent, from a table grown by doubling."""
    powers = _POWERS[0]
    wanted = int(exponents.max()) + 1 if exponents.size else 1
    while powers.shape[0] < wanted:
        with np.errstate(over="ignore"):
            powers = np.concatenate([powers, powers * powers[-1] * _BASE])
        _POWERS[0] = powers
    picked: U64 = powers[exponents]
    return picked


def _terms(frames: IntArray, depth0: IntArray) -> U64:
    """Each frame's share of a path hash, at ``depth0`` frames below the root."""
    with np.errstate(over="ignore"):
        terms: U64 = mix(frames) * _power(depth0)
    return terms


def _keys(paths: U64, depth: IntArray) -> IntArray:
    """Index key of a node from its path sum and depth: 63 bits, so never the index's empty mark."""
    with np.errstate(over="ignore"):
        mixed = mix((paths ^ (depth.astype(np.uint64) * _DEPTH)).view(np.int64))
    keys: IntArray = (mixed >> np.uint64(1)).view(np.int64)
    return keys


def ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenate ``arange(s, s + n)`` for every (s, n), without a loop."""
    run_starts = np.cumsum(lengths) - lengths
    shifts: IntArray = np.repeat(starts - run_starts, lengths)
    return np.arange(shifts.shape[0], dtype=np.int64) + shifts


def _flatten(stacks: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray]:
    lengths = np.fromiter(map(len, stacks), dtype=np.int64, count=len(stacks))
    offsets = np.zeros(len(stacks) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    frames = np.fromiter(chain.from_iterable(stacks), dtype=np.int64, count=int(offsets[-1]))
    return frames, offsets


def _first_occurrence(owner: IntArray, frames: IntArray) -> BoolArray:
    """Per position, whether its frame is the first of that frame in its owner's stack (positions in
    stack order): the others are recursive, their function already among their ancestors."""
    first = first_of_equal((owner << _FRAME_BITS) | frames)
    is_first: BoolArray = first == np.arange(first.shape[0])
    return is_first


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


@dataclass(frozen=True, slots=True)
class _Walk:
    """A batch of stacks (root first, ``frames[offsets[i]:offsets[i + 1]]``) with, per position, its depth
    below the root (0 for a stack's first frame), the path sum of the prefix ending there and its key."""

    frames: IntArray
    offsets: IntArray
    depth0: IntArray
    paths: U64
    keys: IntArray

    @classmethod
    def of(cls, frames: IntArray, offsets: IntArray) -> _Walk:
        lengths = np.diff(offsets)
        starts = np.repeat(offsets[:-1], lengths)
        depth0 = np.arange(frames.shape[0], dtype=np.int64) - starts
        running = np.zeros(frames.shape[0] + 1, dtype=np.uint64)
        np.cumsum(_terms(frames, depth0), out=running[1:])
        with np.errstate(over="ignore"):
            paths: U64 = running[1:] - running[starts]
        return cls(frames, offsets, depth0, paths, _keys(paths, depth0 + 1))


class StackTree:
    def __init__(self, engine: Engine, tree: int = FUNCTIONS) -> None:
        self._engine = engine
        self._tree = tree
        self._lock = threading.RLock()
        self._stacks: dict[Hashable, int] = {}
        self._count = 0
        self._high = ROOT  # every segment whose nodes are at most this is loaded
        self._loaded = False
        size = 1024
        self.parent: IntArray = np.full(size, -1, dtype=np.int64)
        self.function: IntArray = np.zeros(size, dtype=np.int64)
        self.depth: IntArray = np.zeros(size, dtype=np.int64)
        self.recursive = np.zeros(size, dtype=bool)
        self.known = np.zeros(size, dtype=bool)
        self.known[ROOT] = True
        # The writer's index (None until the first write): path sum per node, nodes by path key, and the
        # nodes whose key another node holds, by (parent, frame).
        self._paths: U64 | None = None
        self._index: NodeIndex | None = None
        self._collided: dict[tuple[int, int], int] = {}

    @property
    def size(self) -> int:
        """Nodes loaded, the root excluded."""
        return self._count

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
        walk is vectorised: every prefix of every stack is looked up at once.
        """
        frames = frames.astype(np.int64, copy=False)
        if frames.size and (int(frames.min()) < 0 or int(frames.max()) >= _FRAME_LIMIT):
            raise ValueError(f"stack frame ids must be in [0, 2**{_FRAME_BITS})")
        offsets = offsets.astype(np.int64, copy=False)
        lengths = np.diff(offsets)
        with self._lock:
            if not self._loaded:
                with self._engine.connect() as conn:
                    self._catch_up(conn)
            self._ensure_index()
            walk = _Walk.of(frames, offsets)
            nodes, matched = self._match(walk)
            pending = np.flatnonzero(matched < lengths)
            if pending.size:
                self._append(walk, nodes, matched, pending)
            if len(self._stacks) + len(keys) > MAX_CACHED_STACKS:
                self._stacks.clear()
            self._stacks.update(zip(keys, nodes.tolist(), strict=True))
            return nodes

    def _match(self, walk: _Walk, which: IntArray | None = None) -> tuple[IntArray, IntArray]:
        """How far each stack (of ``which``, default all) runs down the stored tree, and the node it reaches.

        A stored tree holds every prefix of a stored stack, so "the prefix of length d is stored" holds
        up to the match and not past it: a binary search over d, all stacks at once (the whole stack
        first: a known stack takes one round), a few rounds of one lookup per stack instead of a lookup
        per frame. The node found is then checked up its parent chain against the stack's frames; a
        stack whose check fails (a hash collision: vanishingly rare) is matched position by position.
        """
        assert self._index is not None
        if which is None:
            which = np.arange(walk.offsets.shape[0] - 1, dtype=np.int64)
        starts, lengths = walk.offsets[which], walk.offsets[which + 1] - walk.offsets[which]
        low = np.zeros(which.shape[0], dtype=np.int64)  # a stored prefix length (0: the root)
        high = lengths + 1  # past every stored prefix length
        nodes = np.zeros(which.shape[0], dtype=np.int64)
        probe = lengths
        active = np.flatnonzero(lengths > 0)
        while active.size:
            found = self._index.lookup(walk.keys[starts[active] + probe[active] - 1])
            hit = found >= 0
            low[active[hit]] = probe[active[hit]]
            nodes[active[hit]] = found[hit]
            high[active[~hit]] = probe[active[~hit]]
            active = active[high[active] - low[active] > 1]
            probe = (low + high) // 2
        checked = self._check_chains(walk, starts, low, nodes)
        if not bool(checked.all()):
            wrong = np.flatnonzero(~checked)
            nodes[wrong], low[wrong] = self._match_positions(walk, which[wrong])
        return nodes, low

    def _check_chains(self, walk: _Walk, starts: IntArray, matched: IntArray, nodes: IntArray) -> BoolArray:
        """Whether each node is the one of its stack's first ``matched`` frames: its depth, and the frames
        up its parent chain, one level at a time for all stacks."""
        ok: BoolArray = self.depth[nodes] == matched
        node, depth = nodes.copy(), matched.copy()
        active = np.flatnonzero(ok & (depth > 0))
        while active.size:
            same = self.function[node[active]] == walk.frames[starts[active] + depth[active] - 1]
            ok[active[~same]] = False
            active = active[same]
            node[active] = self.parent[node[active]]
            depth[active] -= 1
            active = active[depth[active] > 0]
        return ok

    def _match_positions(self, walk: _Walk, which: IntArray | None = None) -> tuple[IntArray, IntArray]:
        """:meth:`_match` by one index lookup for every position; a stack's match is its leading run of
        positions whose hit is verified (the node's frame is the position's and its parent the previous
        position's node), going on through the nodes kept aside where a hit fails."""
        assert self._index is not None
        if which is None:
            positions = np.arange(walk.frames.shape[0], dtype=np.int64)
            starts, lengths = walk.offsets[:-1], np.diff(walk.offsets)
        else:
            starts, lengths = walk.offsets[which], walk.offsets[which + 1] - walk.offsets[which]
            positions = ranges(starts, lengths)
        count = lengths.shape[0]
        nodes = np.zeros(count, dtype=np.int64)
        matched = np.zeros(count, dtype=np.int64)
        if positions.size == 0:
            return nodes, matched
        found = self._index.lookup(walk.keys[positions])
        hit = np.maximum(found, 0)
        first_step = walk.depth0[positions] == 0
        previous = np.empty(positions.shape[0], dtype=np.int64)
        previous[1:] = found[:-1]
        previous[first_step] = ROOT
        ok = (found >= 0) & (self.function[hit] == walk.frames[positions]) & (self.parent[hit] == previous)
        local_starts = np.cumsum(lengths) - lengths
        bad = np.append(np.flatnonzero(~ok), positions.shape[0])  # ends with a stop past every stack
        stops = np.minimum(bad[np.searchsorted(bad, local_starts)], local_starts + lengths)
        matched[:] = stops - local_starts
        reached = matched > 0
        nodes[reached] = found[stops[reached] - 1]
        if self._collided:
            # A stack stopped at a hit that failed verification may go on through a node kept aside.
            short = np.flatnonzero(stops < local_starts + lengths)
            stopped = short[found[stops[short]] >= 0]
            for stack in stopped.tolist():
                self._match_slowly(walk, int(starts[stack]), int(lengths[stack]), stack, nodes, matched)
        return nodes, matched

    def _match_slowly(
        self, walk: _Walk, start: int, length: int, stack: int, nodes: IntArray, matched: IntArray
    ) -> None:
        """Go on down one stack a frame at a time, through the index or the nodes kept aside (rare)."""
        assert self._index is not None
        node, depth = int(nodes[stack]), int(matched[stack])
        while depth < length:
            frame = int(walk.frames[start + depth])
            found = int(self._index.lookup(walk.keys[start + depth : start + depth + 1])[0])
            if not (found >= 0 and int(self.function[found]) == frame and int(self.parent[found]) == node):
                found = self._collided.get((node, frame), -1)
            if found < 0:
                break
            node, depth = found, depth + 1
        nodes[stack], matched[stack] = node, depth

    def _append(self, walk: _Walk, nodes: IntArray, matched: IntArray, pending: IntArray) -> None:
        """Under the tree's write lock: catch up with other writers, then store what is still missing as a segment."""
        segment: stackcodec.Segment | None = None
        paths: U64 | None = None
        lengths = np.diff(walk.offsets)
        with self._engine.begin() as conn:
            lock_appends(conn, self._tree)
            if self._catch_up(conn):  # another writer appended since: match again against its nodes
                nodes[pending], matched[pending] = self._match(walk, pending)
                pending = pending[matched[pending] < lengths[pending]]
            if pending.size:
                segment, leaves, depth, paths = self._new_nodes(walk, nodes, matched, pending)
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
            self._add(segment, depth, paths)
            nodes[pending] = leaves

    def _new_nodes(
        self, walk: _Walk, nodes: IntArray, matched: IntArray, pending: IntArray
    ) -> tuple[stackcodec.Segment, IntArray, IntArray, U64 | None]:
        """The nodes the ``pending`` stacks lack, numbered past every stored node; each stack's leaf;
        the new nodes' depths and path sums.

        Stacks sharing a new prefix share its nodes: equal path keys are grouped
        at once (:func:`first_of_equal`), and each group is verified to hold one
        prefix (same frame, same parent: a stored node, or the same group one
        step up); should a hash collision make one group of two prefixes, the
        step-by-step numbering below does it instead. Ids go in order of (first
        stack needing the node, depth): along a new stack they count up one by
        one, so most parents are the node just before (a column of 1s).
        """
        lengths = np.diff(walk.offsets)
        counts = lengths[pending] - matched[pending]
        tail = ranges(walk.offsets[pending] + matched[pending], counts)
        total = tail.shape[0]
        owner = np.repeat(np.arange(pending.shape[0]), counts)
        opening = np.zeros(total, dtype=bool)
        opening[np.cumsum(counts) - counts] = True  # the first missing frame of each stack
        frame = walk.frames[tail]
        first = first_of_equal(walk.keys[tail])
        above = np.empty(total, dtype=np.int64)  # the parent: a stored node (>= 0), or -1 - the group one step up
        above[1:] = -1 - first[:-1]
        above[opening] = nodes[pending[owner[opening]]]
        if not bool(((frame[first] == frame) & (above[first] == above)).all()):
            segment, leaves, depth = self._new_nodes_stepwise(walk, nodes, matched, pending)
            return segment, leaves, depth, None
        base = self._high + 1
        if base + total >= _NODE_LIMIT:
            raise ValueError("the stack tree has passed 2**32 nodes")
        made = first == np.arange(total)
        number = np.cumsum(made) - 1
        node_of = base + number[first]
        parent = np.where(opening, above, 0)
        parent[~opening] = node_of[np.flatnonzero(~opening) - 1]
        # Recursive: the frame occurs higher up its own stack (stored part included).
        whole = np.repeat(np.arange(pending.shape[0]), lengths[pending])
        whole_at = ranges(walk.offsets[pending], lengths[pending])
        first_in_stack = _first_occurrence(whole, walk.frames[whole_at])
        skip = np.repeat(np.cumsum(lengths[pending]) - lengths[pending] + matched[pending], counts)
        recursive = ~first_in_stack[skip + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))]
        segment = stackcodec.Segment(
            ids=node_of[made], parents=parent[made], frames=frame[made], recursive=recursive[made]
        )
        depth = walk.depth0[tail][made] + 1
        leaves = node_of[np.cumsum(counts) - 1]
        return segment, leaves, depth, walk.paths[tail][made]

    def _new_nodes_stepwise(
        self, walk: _Walk, nodes: IntArray, matched: IntArray, pending: IntArray
    ) -> tuple[stackcodec.Segment, IntArray, IntArray]:
        """:meth:`_new_nodes` one depth step at a time, keyed by exact ``(parent, frame)``: what a path-key
        collision inside one batch falls back to."""
        return self._new_nodes_by_step(walk.frames, walk.offsets, np.diff(walk.offsets), nodes, matched, pending)

    def _new_nodes_by_step(
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

    def _add(self, segment: stackcodec.Segment, depth: IntArray | None = None, paths: U64 | None = None) -> None:
        """Nodes (in increasing id order, all above those loaded) into the columns, and the index if built;
        ``depth`` and ``paths`` when the caller knows them, else derived from the parents."""
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
        self._count += ids.shape[0]
        self._high = max(self._high, int(ids[-1]))
        if self._index is not None:
            self._index_nodes(ids, paths)

    def _ensure_index(self) -> None:
        """Build the writer's index of every loaded node (once: later nodes are added as they load)."""
        if self._index is not None:
            return
        self._paths = np.zeros(self.parent.shape[0], dtype=np.uint64)
        ids = np.flatnonzero(self.known)
        ids = ids[ids != ROOT]
        self._index = NodeIndex(self._key_of, capacity=capacity_for(ids.shape[0]))
        if ids.size:
            self._index_nodes(ids, None)

    def _key_of(self, nodes: IntArray) -> IntArray:
        """The index key of stored nodes (their path sums must be set)."""
        assert self._paths is not None
        return _keys(self._paths[nodes], self.depth[nodes])

    def _index_nodes(self, ids: IntArray, paths: U64 | None) -> None:
        """Path sums (computed a depth level at a time when not given: parents first) and index entries of
        ``ids``; a node whose key is held already is kept aside by (parent, frame). Given sums come from
        :meth:`_new_nodes`, whose nodes have distinct keys."""
        assert self._index is not None and self._paths is not None
        if paths is None:
            depth = self.depth[ids]
            terms = _terms(self.function[ids], depth - 1)
            order = np.argsort(depth, kind="stable")
            bounds = np.searchsorted(depth[order], np.arange(int(depth.min()), int(depth.max()) + 2))
            for low, high in itertools.pairwise(bounds.tolist()):
                level = order[low:high]
                with np.errstate(over="ignore"):
                    self._paths[ids[level]] = self._paths[self.parent[ids[level]]] + terms[level]
        else:
            self._paths[ids] = paths
        keys = _keys(self._paths[ids], self.depth[ids])
        if paths is None:  # nodes numbered here have distinct keys (grouped by key); others may share one
            distinct = first_of_equal(keys) == np.arange(keys.shape[0])
            aside = ids[~distinct]
            keys, ids = keys[distinct], ids[distinct]
        else:
            aside = ids[:0]
        taken = self._index.add(keys, ids)
        for node in np.concatenate([aside, ids[taken]]).tolist():
            self._collided[(int(self.parent[node]), int(self.function[node]))] = node

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
        if self._paths is not None:
            self._paths = np.concatenate([self._paths, np.zeros(new - current, dtype=np.uint64)])

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
