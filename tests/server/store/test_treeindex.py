"""The C stack tree index against a plain Python prefix tree: the same leaves, the same new nodes numbered
in the same order, with their depths and recursive flags, on random stacks that share prefixes, recurse,
fan out past a node's child list and run deeper than the recursion filter covers; and bad input refused
whole."""

from __future__ import annotations

import mmap
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.store._treeindex import Index, closure, columns, depths, gather, mark_known
from server.store.reserved import _NORESERVE
from tests.support.tools import missing

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]
UInt32Array = npt.NDArray[np.uint32]


@dataclass
class Plain:
    """The prefix tree the plain way: a dictionary from every stored path (root first) to its id."""

    ids: dict[tuple[int, ...], int]

    def walk(
        self, stacks: list[list[int]], next_id: int
    ) -> tuple[list[int], list[tuple[int, int, int, bool]], dict[tuple[int, ...], int]]:
        """Every stack's leaf, and the missing nodes as (parent, frame, depth, recursive) in the order they
        are first needed (stack by stack, root first), numbered from ``next_id``."""
        ids = dict(self.ids)
        made: list[tuple[int, int, int, bool]] = []
        leaves = []
        for stack in stacks:
            for depth in range(1, len(stack) + 1):
                path = tuple(stack[:depth])
                if path not in ids:
                    parent = ids[path[:-1]] if depth > 1 else 0
                    made.append((parent, stack[depth - 1], depth, stack[depth - 1] in stack[: depth - 1]))
                    ids[path] = next_id + len(made) - 1
            leaves.append(ids[tuple(stack)] if stack else 0)
        return leaves, made, ids


class Columns:
    """A tree's columns by node id, as :class:`server.store.stacks.StackTree` keeps them: parent uint32, function
    int32; and a depth column (int32), which the store does not keep, for depths()."""

    def __init__(self, size: int) -> None:
        self.parent: UInt32Array = np.zeros(size, dtype=np.uint32)
        self.function: Int32Array = np.zeros(size, dtype=np.int32)
        self.depth: Int32Array = np.zeros(size, dtype=np.int32)
        self.recursive: BoolArray = np.zeros(size, dtype=bool)
        self.known: BoolArray = np.zeros(size, dtype=bool)
        self.known[0] = True

    def all(self) -> tuple[UInt32Array, Int32Array, BoolArray, BoolArray]:
        """The columns commit() writes."""
        return (self.parent, self.function, self.recursive, self.known)


class Indexed:
    """The index with the tree's function column it reads its nodes' frames from and add() writes them to, as
    :class:`server.store.stacks.StackTree` passes its own: the columns are the tree's, shared with commit()."""

    def __init__(self, tree: Columns | None = None) -> None:
        self.index = Index()
        self.tree = tree if tree is not None else Columns(60_000)

    def __len__(self) -> int:
        return len(self.index)

    def walk(
        self, frames: IntArray, offsets: IntArray, next_id: int, *, leaf_first: bool = False, nodes: bool = True
    ) -> Any:
        if nodes:
            return self.index.walk(frames, offsets, next_id, self.tree.function, leaf_first=leaf_first)
        return self.index.walk(frames, offsets, next_id, self.tree.function, leaf_first=leaf_first, nodes=False)

    def add(self, parents: IntArray, frames: IntArray, ids: IntArray) -> None:
        self.index.add(parents, frames, ids, self.tree.function)

    def lookup(self, parents: IntArray, frames: IntArray) -> bytes:
        return self.index.lookup(parents, frames, self.tree.function)

    def commit(self, walk: int, *columns: npt.NDArray[Any]) -> None:
        self.index.commit(walk, *columns)

    def segment_columns(self, walk: int) -> tuple[bytes, int]:
        return self.index.segment_columns(walk)


def _flat(stacks: list[list[int]], leaf_first: bool) -> tuple[IntArray, IntArray]:
    offsets = np.zeros(len(stacks) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in stacks], out=offsets[1:])
    frames = [f for s in stacks for f in (s[::-1] if leaf_first else s)]
    return np.array(frames, dtype=np.int64), offsets


def _walk(
    index: Indexed, stacks: list[list[int]], next_id: int, leaf_first: bool
) -> tuple[list[int], list[tuple[int, int, int, bool]]]:
    frames, offsets = _flat(stacks, leaf_first)
    leaves, parents, frame_ids, depths, recursive = index.walk(frames, offsets, next_id, leaf_first=leaf_first)
    columns = [np.frombuffer(c, dtype=np.int64).tolist() for c in (parents, frame_ids, depths)]
    flags = np.frombuffer(recursive, dtype=np.uint8).astype(bool).tolist()
    return np.frombuffer(leaves, dtype=np.int64).tolist(), list(zip(*columns, flags, strict=True))


@st.composite
def batches(draw: st.DrawFn) -> list[list[list[int]]]:
    """A few batches of random stacks. Few frames make shared prefixes and recursion; many frames at a
    shallow depth make nodes with more children than a list holds; some stacks are deeper than 256."""
    result = []
    for _ in range(draw(st.integers(1, 4))):
        rng = random.Random(draw(st.integers(0, 2**32)))
        frames = draw(st.sampled_from([2, 4, 12, 60]))
        depth = draw(st.sampled_from([3, 12, 40]))
        stacks = [[rng.randrange(frames) for _ in range(rng.randrange(depth + 1))] for _ in range(rng.randrange(120))]
        if draw(st.booleans()):  # a deep one, with a repeated frame somewhere down it
            deep = [rng.randrange(1000) for _ in range(rng.randrange(257, 400))]
            deep[rng.randrange(200, len(deep))] = deep[rng.randrange(0, 100)]
            stacks.append(deep)
            stacks.append([*deep[: rng.randrange(1, len(deep))], rng.randrange(5)])
        result.append(stacks)
    return result


@settings(max_examples=150, deadline=None, derandomize=True)
@given(batches(), st.booleans(), st.integers(0, 3))
def test_walk_matches_a_plain_prefix_tree(stacks_per_batch: list[list[list[int]]], leaf_first: bool, gap: int) -> None:
    index = Indexed()
    plain = Plain({})
    high = 0
    for stacks in stacks_per_batch:
        next_id = high + 1 + gap  # ids garbage collection left out: the index need not be dense
        leaves, made = _walk(index, stacks, next_id, leaf_first)
        expected_leaves, expected_made, ids = plain.walk(stacks, next_id)
        assert (leaves, made) == (expected_leaves, expected_made)
        assert _walk(index, stacks, next_id, leaf_first) == (leaves, made)  # the walk changed nothing
        if made:
            parents, frames, _, _ = (np.array(c, dtype=np.int64) for c in zip(*made, strict=True))
            index.add(parents, frames, np.arange(next_id, next_id + len(made), dtype=np.int64))
            high = next_id + len(made) - 1
        plain = Plain(ids)
        assert len(index) == len(plain.ids)
    # Every stored pair is found by lookup, and a stored stack walks to its leaf with nothing missing.
    paths = sorted(plain.ids)
    parents = np.array([plain.ids[p[:-1]] if len(p) > 1 else 0 for p in paths], dtype=np.int64)
    frames = np.array([p[-1] for p in paths], dtype=np.int64)
    assert np.frombuffer(index.lookup(parents, frames), dtype=np.int64).tolist() == [plain.ids[p] for p in paths]
    known = [list(p) for p in paths]
    assert _walk(index, known, high + 1, leaf_first) == ([plain.ids[p] for p in paths], [])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(batches(), st.booleans(), st.integers(0, 3))
def test_a_walk_commits_what_add_and_depths_would(
    stacks_per_batch: list[list[list[int]]], leaf_first: bool, gap: int
) -> None:
    """A walk that keeps its new nodes (nodes=False), then segment_columns() and commit(), against the walk
    that copies them out, columns(), add() and depths(): the same leaves, the same segment bytes, the same
    columns and the same index afterwards."""
    by_copies, by_commit = Columns(40_000), Columns(40_000)
    copied, kept = Indexed(by_copies), Indexed(by_commit)
    high = 0
    for stacks in stacks_per_batch:
        next_id = high + 1 + gap
        frames, offsets = _flat(stacks, leaf_first)
        leaves, parents, frame_ids, node_depths, recursive = copied.walk(
            frames, offsets, next_id, leaf_first=leaf_first
        )
        kept_leaves, made, walk = kept.walk(frames, offsets, next_id, leaf_first=leaf_first, nodes=False)
        assert kept_leaves == leaves
        assert made == len(parents) // 8
        if not made:
            continue
        ids = np.arange(next_id, next_id + made, dtype=np.int64)
        parent_ids, frame_column = np.frombuffer(parents, dtype=np.int64), np.frombuffer(frame_ids, dtype=np.int64)
        flags = np.frombuffer(recursive, dtype=np.bool_)
        assert kept.segment_columns(walk) == columns(ids, parent_ids, frame_column, flags)
        copied.add(parent_ids, frame_column, ids)
        depths(by_copies.depth, by_copies.known, parent_ids, ids)
        by_copies.parent[ids], by_copies.function[ids], by_copies.recursive[ids] = parent_ids, frame_column, flags
        assert by_copies.depth[ids].tolist() == np.frombuffer(node_depths, dtype=np.int64).tolist()
        kept.commit(walk, *by_commit.all())
        high = next_id + made - 1
        assert len(kept) == len(copied)
        mine_all: tuple[npt.NDArray[Any], ...] = by_commit.all()
        theirs_all: tuple[npt.NDArray[Any], ...] = by_copies.all()
        for mine, theirs in zip(mine_all, theirs_all, strict=True):
            assert np.array_equal(mine, theirs)
    every = [s for stacks in stacks_per_batch for s in stacks]
    frames, offsets = _flat(every, leaf_first)
    assert (
        kept.walk(frames, offsets, high + 1, leaf_first=leaf_first)[:2]
        == (copied.walk(frames, offsets, high + 1, leaf_first=leaf_first)[:2])
    )


def test_a_walks_nodes_commit_once_and_only_while_they_are_the_last() -> None:
    """commit() and segment_columns() take only the last walk's nodes, and commit() only once: a walk
    replaced by another, a second commit or a column too short for the new ids is refused, changing nothing."""
    tree = Columns(16)
    index = Indexed(tree)
    frames, offsets = np.array([5, 6, 7], dtype=np.int64), np.array([0, 3], dtype=np.int64)
    _, made, first_walk = index.walk(frames, offsets, 1, nodes=False)
    _, again, second_walk = index.walk(frames, offsets, 1, nodes=False)
    assert made == again == 3 and second_walk != first_walk
    for call in (lambda: index.commit(first_walk, *tree.all()), lambda: index.segment_columns(first_walk)):
        with pytest.raises(ValueError, match="replaced"):
            call()
    short = Columns(3)  # room for ids 0-2, the walk made 1-3
    with pytest.raises(ValueError, match="room for id 3"):
        index.commit(second_walk, *short.all())
    assert len(index) == 0 and not tree.known[1:].any() and not short.known[1:].any()
    index.commit(second_walk, *tree.all())
    assert len(index) == 3 and tree.parent[1:4].tolist() == [0, 1, 2] and bool(tree.known[1:4].all())
    with pytest.raises(ValueError, match="replaced"):
        index.commit(second_walk, *tree.all())
    assert len(index) == 3
    assert index.walk(frames, offsets, 4, nodes=False)[:2] == (np.array([3], dtype=np.int64).tobytes(), 0)


@pytest.mark.parametrize(
    ("column", "wrong"),
    [
        (0, np.int32),
        (0, np.int64),
        (0, np.uint64),
        (1, np.int64),
        (1, np.uint32),
        (1, np.float32),
        (2, np.uint8),
        (3, np.int16),
    ],
)
def test_commit_refuses_a_column_of_another_type(column: int, wrong: type[np.generic]) -> None:
    """Each column's bytes are written as its type (parent uint32, function int32, the flags bool):
    a column of another width or kind is refused before anything is written."""
    tree = Columns(16)
    index = Indexed(tree)
    _, _, walk = index.walk(np.array([5, 6, 7], dtype=np.int64), np.array([0, 3], dtype=np.int64), 1, nodes=False)
    given: list[npt.NDArray[np.generic]] = list(tree.all())
    given[column] = np.zeros(16, dtype=wrong)
    with pytest.raises(ValueError, match="must be a writable column of"):
        index.commit(walk, *given)
    assert len(index) == 0 and not tree.known[1:].any()
    index.commit(walk, *tree.all())
    assert tree.function[1:4].tolist() == [5, 6, 7] and tree.parent[1:4].tolist() == [0, 1, 2]


@pytest.mark.parametrize("mapped", [False, True])
def test_commit_writes_only_the_new_ids_whole_pages_around_them_untouched(mapped: bool) -> None:
    """commit() faults in whole pages around the new ids before writing them (prefault in _treeindex.c): every
    other entry keeps its bytes, those sharing a page with the new ids and the memory past the columns' end
    alike. Columns are views into bigger arrays filled with a sentinel: heap arrays, or anonymous mappings as
    server.store.reserved makes them."""
    size, made = 20_000, 3_000
    stacks = [[7, 8, *range(100 + k, 110 + k)] for k in range(made // 10)]
    frames, offsets = _flat(stacks, leaf_first=False)

    def bigger(dtype: Any, fill: int) -> npt.NDArray[Any]:
        count = size + 4096
        if mapped:
            mapping = mmap.mmap(-1, count * np.dtype(dtype).itemsize, flags=mmap.MAP_PRIVATE | _NORESERVE)
            whole = np.frombuffer(mapping, dtype=dtype, count=count)
        else:
            whole = np.zeros(count, dtype=dtype)
        whole[:] = fill
        return whole

    wholes = [bigger(np.uint32, 0xABCD), bigger(np.int32, -5), bigger(np.bool_, 1), bigger(np.bool_, 0)]
    wholes[3][0] = True
    columns_in = [whole[:size] for whole in wholes]
    index = Index()
    _, count, walk = index.walk(frames, offsets, 1, columns_in[1], nodes=False)
    before = [whole.copy() for whole in wholes]
    index.commit(walk, *columns_in)
    new = slice(1, 1 + count)
    for whole, was in zip(wholes, before, strict=True):
        outside = np.ones(whole.shape[0], dtype=bool)
        outside[new] = False
        assert np.array_equal(whole[outside], was[outside])
    assert columns_in[3][new].all() and columns_in[1][1:3].tolist() == [7, 8]
    found = index.lookup(np.array([0], np.int64), np.array([7], np.int64), columns_in[1])
    assert np.frombuffer(found, np.int64).tolist() == [1]


def test_a_stack_of_2_31_frames_is_refused() -> None:
    """Depths are int32: a walk refuses a stack of 2**31 frames, before reading a frame (the frames here are
    reserved address space, never touched). A system that will not reserve 16 GiB skips this on a developer's
    machine, and fails it under STACKYARD_STRICT (CI)."""
    length = 1 << 31
    try:
        mapping = mmap.mmap(-1, length * 8, flags=mmap.MAP_PRIVATE | _NORESERVE)
    except OSError as exc:
        missing(f"no 16 GiB of address space to reserve ({exc})")
    frames = np.frombuffer(mapping, dtype=np.int64)
    with pytest.raises(ValueError, match="shorter than 2\\*\\*31 frames"):
        Indexed().walk(frames, np.array([0, length], dtype=np.int64), 1)
    del frames
    mapping.close()


def test_a_segment_that_could_reach_the_depth_limit_is_refused() -> None:
    """depths() refuses, writing nothing, a segment whose nodes could reach depth 2**31 (the column is int32),
    and takes one that stays below it."""
    tree = Columns(8)
    tree.known[1], tree.depth[1] = True, 2**31 - 3
    with pytest.raises(ValueError, match="2\\*\\*31 deep"):
        depths(tree.depth, tree.known, np.array([1, 2, 3], dtype=np.int64), np.array([2, 3, 4], dtype=np.int64))
    assert not tree.known[2:].any()
    depths(tree.depth, tree.known, np.array([1, 2], dtype=np.int64), np.array([2, 3], dtype=np.int64))
    assert tree.depth[2:4].tolist() == [2**31 - 2, 2**31 - 1]


def test_a_node_with_many_children_finds_each() -> None:
    """Children past a node's list go through the hash table, in the index and within one walk."""
    index = Indexed()
    stacks = [[7, child] for child in range(5_000)] + [[7, 3, grandchild] for grandchild in range(100)]
    leaves, made = _walk(index, stacks, 1, leaf_first=False)
    assert leaves[:3] == [2, 3, 4] and len(made) == 1 + 5_000 + 100
    parents, frames, _, _ = (np.array(c, dtype=np.int64) for c in zip(*made, strict=True))
    index.add(parents, frames, np.arange(1, len(made) + 1, dtype=np.int64))
    assert _walk(index, stacks[::-1], len(made) + 1, leaf_first=False) == (leaves[::-1], [])
    assert np.frombuffer(index.lookup(np.array([1, 1]), np.array([4_999, 5_000])), dtype=np.int64).tolist() == [
        5_001,
        -1,
    ]


@pytest.mark.parametrize("committed", [False, True])
def test_every_fan_out_across_the_list_finds_each_child_and_no_other(committed: bool) -> None:
    """A node keeps no count of its children: its list being full is what sends a lookup to the hash table.
    So every number of children from none to past any list's length (the list holds 8, or 2 in a build with
    -DLIST=2), indexed by add() or by commit() and in batches that each add one more, finds each child and
    nothing for a frame it lacks, in the index and within one walk."""
    tree = Columns(2_000)
    index = Indexed(tree)
    high = 0
    for fan_out in range(1, 21):
        parent = [fan_out]  # frame `fan_out` at depth 1: a node of its own, under which the children go
        for child in range(fan_out):  # one child more a batch, so lists fill across walks, not only within one
            stacks = [[*parent, 100 + c] for c in range(child + 1)]
            frames, offsets = _flat(stacks, leaf_first=False)
            if committed:
                _, made, walk = index.walk(frames, offsets, high + 1, nodes=False)
                index.commit(walk, *tree.all())
            else:
                _, parents, frame_ids, _, _ = index.walk(frames, offsets, high + 1)
                made = len(parents) // 8
                ids = np.arange(high + 1, high + 1 + made, dtype=np.int64)
                index.add(np.frombuffer(parents, dtype=np.int64), np.frombuffer(frame_ids, dtype=np.int64), ids)
            assert made == (2 if child == 0 else 1)
            high += made
        node = int(np.frombuffer(index.lookup(np.array([0]), np.array(parent)), dtype=np.int64)[0])
        wanted = list(range(100, 100 + fan_out + 2))  # the children, then two frames it lacks
        found = np.frombuffer(index.lookup(np.full(len(wanted), node), np.array(wanted)), dtype=np.int64).tolist()
        assert found[-2:] == [-1, -1] and len(set(found[:-2])) == fan_out and min(found[:-2]) > node
        # One walk: the stored children, and new ones that fill the walk's own list past its length.
        stacks = [[*parent, frame] for frame in [*wanted, *range(200, 220), *wanted]]
        leaves, made_nodes = _walk(index, stacks, high + 1, leaf_first=False)
        assert leaves[:fan_out] == found[:-2] and len(made_nodes) == 2 + 20
        assert leaves[len(wanted) + 20 :] == leaves[: len(wanted)]
    assert len(index) == high


def test_a_commit_after_an_add_finds_every_child() -> None:
    """A walk places each new node in its parent's list or the hash table by the lists it saw; nodes added
    between the walk and its commit lengthen those lists, and the commit still indexes every node findably."""
    for before, between, new in ((0, 1, 1), (1, 20, 3), (3, 3, 30), (7, 1, 2), (0, 0, 12)):
        tree = Columns(1_000)
        index = Indexed(tree)
        # Stored: node 1 (frame 5 under the root) with `before` children.
        index.add(np.array([0, *[1] * before]), np.array([5, *range(100, 100 + before)]), np.arange(1, before + 2))
        high = before + 1
        stacks = [[5, frame, 7] for frame in range(300, 300 + new)]
        frames, offsets = _flat(stacks, leaf_first=False)
        leaves, made, walk = index.walk(frames, offsets, high + 1, nodes=False)
        assert made == 2 * new
        added = np.arange(high + made + 1, high + made + 1 + between)
        index.add(np.ones(between, dtype=np.int64), np.arange(200, 200 + between), added)
        index.commit(walk, *tree.all())
        assert len(index) == 1 + before + between + made
        children = [*range(100, 100 + before), *range(200, 200 + between), *range(300, 300 + new)]
        lookup = index.lookup(np.ones(len(children) + 1, dtype=np.int64), np.array([*children, 400]))
        found = np.frombuffer(lookup, dtype=np.int64)
        assert (found[:-1] > 1).all() and found[-1] == -1 and len(set(found.tolist())) == len(children) + 1
        assert _walk(index, stacks, high + made + between + 1, leaf_first=False) == (
            np.frombuffer(leaves, dtype=np.int64).tolist(),
            [],
        )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(batches(), st.booleans(), st.integers(0, 2**32))
def test_walk_through_frame_of_equals_the_gathered_frames(
    stacks_per_batch: list[list[list[int]]], leaf_first: bool, seed: int
) -> None:
    """Stacks given as positions in ``frame_of`` (a profile's line entries, several to a function) walk as the
    frames ``frame_of[positions]`` do, new nodes and all, batch after batch."""
    rng = random.Random(seed)
    mapped, gathered = Indexed(), Indexed()
    high = 0
    for stacks in stacks_per_batch:
        frames, offsets = _flat(stacks, leaf_first)
        distinct = sorted(set(frames.tolist()))
        # Each frame as one to three entries, in shuffled order; each frame of a stack takes one of them.
        entries_of: dict[int, list[int]] = {f: [] for f in distinct}
        frame_of_list: list[int] = []
        for f in rng.sample(distinct * 3, len(distinct) * 3)[: len(distinct) * 2] + distinct:
            entries_of[f].append(len(frame_of_list))
            frame_of_list.append(f)
        positions = np.array([rng.choice(entries_of[f]) for f in frames.tolist()], dtype=np.int64)
        frame_of = np.array(frame_of_list, dtype=np.int64)
        with_map = mapped.index.walk(
            positions, offsets, high + 1, mapped.tree.function, leaf_first=leaf_first, frame_of=frame_of
        )
        plain = gathered.walk(frames, offsets, high + 1, leaf_first=leaf_first)
        assert with_map == plain
        made = len(plain[1]) // 8
        if made:
            _, _, walk_a = mapped.index.walk(
                positions,
                offsets,
                high + 1,
                mapped.tree.function,
                leaf_first=leaf_first,
                nodes=False,
                frame_of=frame_of,
            )
            _, _, walk_b = gathered.walk(frames, offsets, high + 1, leaf_first=leaf_first, nodes=False)
            assert mapped.segment_columns(walk_a) == gathered.segment_columns(walk_b)
            mapped.commit(walk_a, *mapped.tree.all())
            gathered.commit(walk_b, *gathered.tree.all())
            high += made
    assert np.array_equal(mapped.tree.function, gathered.tree.function)
    assert np.array_equal(mapped.tree.parent, gathered.tree.parent)


def test_a_batch_past_the_kept_frames_walks_as_gathered_and_so_do_smaller_ones_after() -> None:
    """The frames looked up in ``frame_of`` go to a scratch the index keeps for the next walk, up to 2**20 of
    them: a batch past that (1.2 M frames) walks as its gathered frames do, and so do small batches after it,
    whose scratch is then made again."""
    rng = np.random.default_rng(17)
    frame_of = np.repeat(np.arange(500, dtype=np.int64), 2)  # two entries a frame
    mapped, gathered = Indexed(), Indexed()
    for n_stacks in (20_000, 3, 300):
        positions = rng.integers(0, frame_of.shape[0], n_stacks * 60, dtype=np.int64)
        offsets = np.arange(0, positions.shape[0] + 1, 60, dtype=np.int64)
        with_map = mapped.index.walk(positions, offsets, 1, mapped.tree.function, frame_of=frame_of)
        assert with_map == gathered.walk(frame_of[positions], offsets, 1)
        assert len(with_map[1]) // 8 > n_stacks  # new nodes were made: the walk went past the root
    # No frames at all (only empty stacks), with no scratch kept: nothing to look up.
    empty = np.zeros(0, dtype=np.int64)
    fresh = Indexed()
    for index in (fresh, mapped):
        leaves, made, _ = index.index.walk(
            empty, np.zeros(3, dtype=np.int64), 1, index.tree.function, nodes=False, frame_of=frame_of
        )
        assert np.frombuffer(leaves, dtype=np.int64).tolist() == [0, 0] and made == 0


def test_frame_of_out_of_place_is_refused() -> None:
    index = Indexed()
    offsets = np.array([0, 3], dtype=np.int64)
    frame_of = np.array([5, 6, 7], dtype=np.int64)
    for positions, bad_map in (
        (np.array([0, 1, 3]), frame_of),  # past the map
        (np.array([0, -1, 2]), frame_of),  # before it
        (np.array([0, 1, 2]), np.array([5, 2**31, 7])),  # a frame out of range
        (np.array([0, 1, 2]), np.array([5, -2, 7])),
    ):
        with pytest.raises(ValueError):
            index.index.walk(positions, offsets, 1, index.tree.function, frame_of=bad_map)
    with pytest.raises(TypeError, match="frame_of must be a contiguous buffer of 64-bit integers"):
        index.index.walk(np.array([0, 1, 2]), offsets, 1, index.tree.function, frame_of=frame_of.astype(np.int32))
    assert len(index) == 0


def test_bad_input_is_refused_whole() -> None:
    index = Indexed()
    index.add(np.array([0, 1]), np.array([5, 6]), np.array([1, 2]))
    frames, offsets = np.array([5, 6, 7], dtype=np.int64), np.array([0, 3], dtype=np.int64)
    for bad_frames, bad_offsets in (
        (frames, np.array([1, 3])),  # not from 0
        (frames, np.array([0, 2])),  # not to the end
        (frames, np.array([0, 3, 2, 3])),  # decreasing
        (np.array([5, -1, 7]), offsets),
        (np.array([5, 2**31, 7]), offsets),
    ):
        with pytest.raises(ValueError):
            index.walk(bad_frames, bad_offsets, 3)
    for next_id in (0, 2**32):
        with pytest.raises(ValueError, match="next_id"):
            index.walk(frames, offsets, next_id)
    with pytest.raises(OverflowError, match="2\\*\\*32 nodes"):
        index.walk(np.array([5, 6, 7, 8], dtype=np.int64), np.array([0, 4]), 2**32 - 1)
    with pytest.raises(TypeError, match="64-bit"):
        index.walk(frames.astype(np.int32), offsets, 3)
    for parents, frame_ids, ids in (
        ([0], [1], [0]),  # the root is no one's child
        ([3], [1], [3]),  # a parent not below its node
        ([0], [2**31], [3]),
        ([0, 0], [8, 9], [3, 2]),  # node 2 is indexed already: nothing of the call is taken
    ):
        with pytest.raises(ValueError):
            index.add(np.array(parents), np.array(frame_ids), np.array(ids))
    # The function column holds the indexed nodes' frames: one that does not reach every indexed id (or the
    # ids added), or of another type, is refused.
    with pytest.raises(ValueError, match="room for id 2"):
        index.index.walk(frames, offsets, 3, np.zeros(2, dtype=np.int32))
    with pytest.raises(ValueError, match="function must be a writable column of int32"):
        index.index.lookup(np.array([0]), np.array([5]), np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError, match="room for id 9"):
        index.index.add(np.array([0]), np.array([7]), np.array([9]), np.zeros(9, dtype=np.int32))
    assert len(index) == 2
    assert np.frombuffer(index.lookup(np.array([0, 0]), np.array([8, 9])), dtype=np.int64).tolist() == [-1, -1]
    # What was refused changed nothing: the stored stack still walks to its leaf.
    assert _walk(index, [[5, 6]], 3, leaf_first=False) == ([2], [])


@pytest.mark.parametrize("gaps", [False, True])
def test_depths_follow_the_parents_in_one_pass(gaps: bool) -> None:
    """Depths of nodes loaded from segments (consecutive ids, or with the gaps garbage collection leaves),
    parents stored earlier or within the same call; a parent that is neither is refused before any write."""
    rng = random.Random(3)
    ids = np.cumsum(rng.choices([1, 3], k=2_000) if gaps else [1] * 2_000).astype(np.int64) + 10
    parents = np.array([rng.choice([0, 4, *ids[max(0, i - 5) : i].tolist()]) for i in range(ids.shape[0])])
    depth = np.zeros(int(ids[-1]) + 1, dtype=np.int32)
    known = np.zeros(depth.shape[0], dtype=bool)
    known[[0, 4]], depth[4] = True, 7  # the root, and a node loaded before
    expected = {0: 0, 4: 7}
    for node, parent in zip(ids.tolist(), parents.tolist(), strict=True):
        expected[node] = expected[parent] + 1
    orphan = parents.copy()
    orphan[-1] = 5  # neither known nor in the call
    with pytest.raises(ValueError, match="not stored"):
        depths(depth, known, orphan, ids)
    assert not known[ids].any() and not depth[ids].any()
    depths(depth, known, parents, ids)
    assert depth[ids].tolist() == [expected[n] for n in ids.tolist()] and bool(known[ids].all())
    for wrong in (depth.astype(np.int64), depth.astype(np.uint32)):
        with pytest.raises(ValueError, match="depth must be a writable column of int32"):
            depths(wrong, known, parents, ids)  # type: ignore[arg-type]
    # What a load does (the store keeps no depth column): the same checks, only known is written.
    known = np.zeros(depth.shape[0], dtype=bool)
    known[[0, 4]] = True
    with pytest.raises(ValueError, match="not stored"):
        mark_known(known, orphan, ids)
    with pytest.raises(ValueError, match="must increase"):
        mark_known(known, parents, ids[::-1].copy())
    with pytest.raises(ValueError, match="of one length"):
        mark_known(known, parents[:-1].copy(), ids)
    assert not known[ids].any()
    mark_known(known, parents, ids)
    assert bool(known[ids].all()) and int(np.count_nonzero(known)) == ids.shape[0] + 2


def _random_tree(rng: random.Random, count: int) -> npt.NDArray[np.uint32]:
    """A parent column by id (0: the root; id 0 itself unused): every node's parent below it."""
    parent = np.zeros(count + 1, dtype=np.uint32)
    for node in range(2, count + 1):
        parent[node] = rng.randrange(0, node)
    return parent


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=0, max_value=60), st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_closure_marks_the_leaves_and_every_ancestor(count: int, leaves_wanted: int, seed: int) -> None:
    rng = random.Random(seed)
    parent = _random_tree(rng, count)
    leaves = np.array([rng.randrange(0, count + 1) for _ in range(leaves_wanted)], dtype=np.int64)
    expected = np.zeros(count + 1, dtype=bool)
    for leaf in leaves.tolist():  # the plain walk: up to the root, every node on the way
        node = leaf
        while node > 0:
            expected[node] = True
            node = int(parent[node])
    mark = np.zeros(count + 1, dtype=bool)
    closure(mark, parent, leaves)
    assert mark.tolist() == expected.tolist()


def test_closure_refuses_a_leaf_outside_the_mark_and_a_broken_column() -> None:
    parent = np.array([0, 0, 1, 2], dtype=np.uint32)
    mark = np.zeros(4, dtype=bool)
    with pytest.raises(ValueError, match="leaves in"):
        closure(mark, parent, np.array([2, 4], dtype=np.int64))
    assert not mark.any()  # checked whole first
    with pytest.raises(ValueError, match="room for id 3"):
        closure(mark, parent[:3], np.array([2], dtype=np.int64))
    broken = np.array([0, 0, 3, 2], dtype=np.uint32)  # 2's parent is 3: not below it
    with pytest.raises(ValueError, match="not below it"):
        closure(np.zeros(4, dtype=bool), broken, np.array([2], dtype=np.int64))


@given(st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=40), st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_gather_equals_the_arrays_numpy_builds(count: int, leaves_wanted: int, seed: int) -> None:
    rng = random.Random(seed)
    parent = _random_tree(rng, count)
    function = np.array([rng.randrange(0, 50) for _ in range(count + 1)], dtype=np.int32)
    recursive = np.array([rng.random() < 0.2 for _ in range(count + 1)], dtype=bool)
    mark = np.zeros(count + 1, dtype=bool)
    closure(mark, parent, np.array([rng.randrange(1, count + 1) for _ in range(leaves_wanted)], dtype=np.int64))
    ids = np.flatnonzero(mark)
    index = np.cumsum(mark) - 1
    expected_parent = np.where(parent[ids] > 0, index[parent[ids].astype(np.int64)], -1)
    drawn = int(mark.sum())
    got_ids = np.empty(drawn, dtype=np.int64)
    got_parent, got_function = (np.empty(drawn, dtype=np.int32) for _ in range(2))  # positions and frames fit
    got_recursive = np.empty(drawn, dtype=bool)
    position = np.empty(count + 1, dtype=np.int32)
    gather(mark, parent, function, recursive, position, got_ids, got_parent, got_function, got_recursive)
    assert got_ids.tolist() == ids.tolist()
    assert got_parent.tolist() == expected_parent.tolist()
    assert got_function.tolist() == function[ids].tolist() and got_recursive.tolist() == recursive[ids].tolist()
    # Without ids (what a flame graph asks: only an export reads them), the other arrays are the same.
    again = [np.zeros_like(got_parent), np.zeros_like(got_function), np.zeros_like(got_recursive)]
    gather(mark, parent, function, recursive, np.empty_like(position), None, *again)
    assert [a.tolist() for a in again] == [got_parent.tolist(), got_function.tolist(), got_recursive.tolist()]
    assert position[ids].tolist() == list(range(drawn))


def test_gather_refuses_a_mark_that_is_not_a_closure_and_outputs_of_another_length() -> None:
    parent = np.array([0, 0, 1], dtype=np.uint32)
    function, recursive, position = np.zeros(3, dtype=np.int32), np.zeros(3, dtype=bool), np.empty(3, dtype=np.int32)
    ids = np.empty(1, dtype=np.int64)
    parents, functions = (np.empty(1, dtype=np.int32) for _ in range(2))
    flags = np.empty(1, dtype=bool)
    not_closed = np.array([False, False, True])  # 2 without its parent 1
    with pytest.raises(ValueError, match="parent marked"):
        gather(not_closed, parent, function, recursive, position, ids, parents, functions, flags)
    with pytest.raises(ValueError, match="one entry a mark"):
        gather(np.array([False, True, True]), parent, function, recursive, position, ids, parents, functions, flags)
