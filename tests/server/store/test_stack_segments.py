"""The stack tree over segments: the same nodes a row per node gave, one id per (parent, frame) with
concurrent writers, the tree read back by a fresh process, on both databases."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from server.store import stackcodec
from server.store import stacks as stacks_module
from server.store._treeindex import Index
from server.store.appends import Appends
from server.store.database import make_engine
from server.store.gc import collect_garbage
from server.store.models import SegmentRow
from server.store.repository import Store
from server.store.stacks import FUNCTIONS, ROOT, StackTree, concatenate, read_segments


def _random_stacks(rng: random.Random, count: int, frames: int = 12, depth: int = 9) -> list[list[int]]:
    """Stacks root first over few frames, so they share prefixes and repeat frames (recursion)."""
    return [[rng.randrange(1, frames) for _ in range(rng.randrange(0, depth))] for _ in range(count)]


def _reference(stacks: list[list[int]]) -> dict[tuple[int, ...], tuple[bool, int]]:
    """Every non-empty prefix of every stack: its recursive flag and depth, computed the plain way."""
    nodes: dict[tuple[int, ...], tuple[bool, int]] = {}
    for stack in stacks:
        for d in range(1, len(stack) + 1):
            nodes[tuple(stack[:d])] = (stack[d - 1] in stack[: d - 1], d)
    return nodes


def _paths(tree: StackTree, node: int) -> tuple[int, ...]:
    path: list[int] = []
    while node != ROOT:
        path.append(int(tree.function[node]))
        node = int(tree.parent[node])
    return tuple(reversed(path))


def _stored_pairs(database_url: str) -> list[tuple[int, int]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tree = concatenate(read_segments(conn))
    finally:
        engine.dispose()
    assert bool((tree.parents < tree.ids).all())
    return list(zip(tree.parents.tolist(), tree.frames.tolist(), strict=True))


def test_stacks_resolve_to_the_prefix_tree_of_a_plain_walk(database_url: str) -> None:
    rng = random.Random(7)
    _resolve_and_compare(database_url, [_random_stacks(rng, 300) for _ in range(4)])


def test_wide_and_deep_stacks_give_the_plain_tree(database_url: str) -> None:
    """Nodes with more children than the index keeps in a list (the rest are found through its hash
    table), and stacks deeper than its recursion filter covers, recursive far down."""
    rng = random.Random(5)
    wide = [[1, rng.randrange(2, 600), rng.randrange(2, 5)] for _ in range(400)]
    deep = [rng.randrange(1, 2000) for _ in range(300)]
    deep[290] = deep[3]
    deeper = [*deep, *(rng.randrange(1, 2000) for _ in range(50))]
    _resolve_and_compare(database_url, [wide[:200], [*wide[200:], deep], [deeper, deep[:150], wide[0]]])


def _resolve_and_compare(database_url: str, batches: list[list[list[int]]]) -> None:
    engine = make_engine(database_url)
    tree = StackTree(engine)
    try:
        leaves: dict[tuple[int, ...], int] = {}
        for stacks in batches:
            for stack, leaf in zip(stacks, tree.resolve(stacks), strict=True):
                assert _paths(tree, leaf) == tuple(stack)
                assert leaves.setdefault(tuple(stack), leaf) == leaf  # a stack seen again keeps its node
        expected = _reference([s for batch in batches for s in batch])
        assert tree.size == len(expected)
        for path, (recursive, depth) in expected.items():
            found = leaves.get(path)
            if found is not None:
                assert (bool(tree.recursive[found]), len(_paths(tree, found))) == (recursive, depth)
        with engine.connect() as conn:
            assert conn.execute(select(func.sum(SegmentRow.items))).scalar_one() == len(expected)
            assert conn.execute(select(func.count()).select_from(SegmentRow)).scalar_one() <= len(batches)
        # A fresh process reads the same tree back from the segments.
        fresh = StackTree(engine)
        nodes = np.array(sorted(leaves.values()), dtype=np.int64)
        fresh.ensure(nodes)
        for name in ("parent", "function", "recursive"):
            assert getattr(fresh, name)[nodes].tolist() == getattr(tree, name)[nodes].tolist()
        again = fresh.resolve(batches[0])
        assert again == [leaves[tuple(s)] for s in batches[0]]
    finally:
        engine.dispose()


def test_concurrent_writers_give_one_id_per_node(database_url: str) -> None:
    """Writers with caches of their own (replicas, worker processes) resolve overlapping new stacks at once."""
    rng = random.Random(11)
    shared = _random_stacks(rng, 400, frames=30, depth=14)
    results: dict[int, dict[tuple[int, ...], int]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(number: int) -> None:
        engine = make_engine(database_url)
        try:
            tree = StackTree(engine)
            mine = random.Random(number).sample(shared, 300)
            start.wait()
            for part in range(0, len(mine), 50):
                chunk = mine[part : part + 50]
                leaves = tree.resolve(chunk)
                results.setdefault(number, {}).update(zip(map(tuple, chunk), leaves, strict=True))
        except BaseException as exc:  # reported below: a thread's exception would vanish
            failures.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    by_stack: dict[tuple[int, ...], set[int]] = {}
    for found in results.values():
        for stack, leaf in found.items():
            by_stack.setdefault(stack, set()).add(leaf)
    assert all(len(leaves) == 1 for leaves in by_stack.values())  # every writer got the same leaf
    pairs = _stored_pairs(database_url)
    assert len(pairs) == len(set(pairs)) == len(_reference([list(s) for s in by_stack]))


def test_collection_rewrites_segments_and_never_reuses_an_id(database_url: str) -> None:
    """Nodes no sample key reaches are dropped from their segments, except the highest node and its
    ancestors: new nodes are numbered past it, so an id another process still caches never changes meaning."""
    store = Store.from_url(database_url)
    try:
        stacks = [[1, 2, 3], [1, 2, 4], [5, 6], [5, 7, 8, 9]]
        leaves = store.stacks.resolve(stacks)
        highest = max(leaves)
        removed = collect_garbage(store)  # no profile: nothing is referenced
        fresh = StackTree(store.engine)
        fresh.ensure(np.array([highest], dtype=np.int64))
        assert _paths(fresh, highest) == (5, 7, 8, 9)
        assert fresh.size == 4 and removed["stack_nodes"] == len(_reference(stacks)) - 4
        again = fresh.resolve([[1, 2, 3]])
        assert again[0] > highest  # numbered past every id ever handed out
        assert _paths(fresh, again[0]) == (1, 2, 3)
    finally:
        store.close()


def test_a_segment_naming_a_parent_not_stored_is_refused(database_url: str) -> None:
    """A segment whose nodes hang off a node no segment holds is a damaged store: loading says so and
    leaves nothing of it in memory, rather than reading nodes with wrong depths. Segments are decoded and
    loaded one at a time (a whole tree decoded at once was a first load's peak memory), so the good ones
    before it stay loaded; every later read meets the damaged one again."""
    engine = make_engine(database_url)
    try:
        tree = StackTree(engine)
        tree.resolve([[1, 2]])  # nodes 1 and 2
        orphans = stackcodec.Segment(
            ids=np.array([10, 11]), parents=np.array([2, 9]), frames=np.array([3, 4]), recursive=np.zeros(2, bool)
        )
        with engine.begin() as conn:
            conn.execute(
                insert(SegmentRow).values(
                    kind=FUNCTIONS, first_id=10, last_id=11, items=2, data=stackcodec.encode(orphans)
                )
            )
        fresh = StackTree(engine)
        with pytest.raises(stackcodec.CorruptSegment, match="not stored"):
            fresh.ensure(np.array([2], dtype=np.int64))
        assert fresh.size == 2 and fresh.known[1:3].all() and not bool(fresh.known[3:].any())
        with pytest.raises(stackcodec.CorruptSegment, match="not stored"):
            fresh.ensure(np.array([11], dtype=np.int64))
        assert fresh.size == 2
    finally:
        engine.dispose()


def test_a_process_builds_the_dedup_index_only_when_it_resolves_stacks(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that only answers queries loads the columns without the index (8 bytes a node: the API
    process, when ingest runs in worker processes); the first resolve builds it from the columns, a few ids
    at a time here, and finds every stored stack there."""
    monkeypatch.setattr(stacks_module, "_INDEX_CHUNK", 7)
    rng = random.Random(11)
    batches = [_random_stacks(rng, 200), [[1, 2, 3], *_random_stacks(rng, 200)]]
    engine = make_engine(database_url)
    try:
        writer = StackTree(engine)
        leaves = [writer.resolve(batch) for batch in batches]
        fresh = StackTree(engine)
        fresh.ensure(np.array(leaves[1], dtype=np.int64))
        assert not fresh.indexed and fresh.size == writer.size
        assert fresh.resolve(batches[1]) == leaves[1]  # known stacks: the index built from the columns
        assert fresh.indexed and fresh.size == writer.size
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(SegmentRow)).scalar_one() == 2  # nothing new
        new = fresh.resolve([[1, 2, 3, 4]])
        assert new[0] == writer.size + 1 and _paths(fresh, new[0]) == (1, 2, 3, 4)
    finally:
        engine.dispose()


def test_an_index_build_that_runs_out_of_memory_starts_again_at_the_next_resolve(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build cut short (MemoryError on its second chunk) leaves no half-built index behind: the next resolve
    builds it whole, and known stacks keep their nodes."""

    class FailsOnce:
        failures = 1

        def __init__(self) -> None:
            self.index, self.adds = Index(), 0

        def add(self, *args: object) -> None:
            self.adds += 1
            if self.adds == 2 and FailsOnce.failures:
                FailsOnce.failures -= 1
                raise MemoryError
            self.index.add(*args)  # type: ignore[arg-type]

        def __getattr__(self, name: str) -> object:
            return getattr(self.index, name)

        def __len__(self) -> int:
            return len(self.index)

    engine = make_engine(database_url)
    try:
        stacks = _random_stacks(random.Random(13), 100)
        leaves = StackTree(engine).resolve(stacks)
        monkeypatch.setattr(stacks_module, "Index", FailsOnce)
        monkeypatch.setattr(stacks_module, "_INDEX_CHUNK", 7)
        fresh = StackTree(engine)
        with pytest.raises(MemoryError):
            fresh.resolve(stacks)
        assert not fresh.indexed
        assert fresh.resolve(stacks) == leaves and fresh.indexed
    finally:
        engine.dispose()


def test_a_segment_overlapping_the_loaded_nodes_is_refused(database_url: str) -> None:
    """Segments hold ids past every node before them: one that reuses a loaded id would overwrite that node's
    columns (the index refused it, but a process that only queries has none)."""
    engine = make_engine(database_url)
    try:
        StackTree(engine).resolve([[1, 2]])  # nodes 1 and 2
        again = stackcodec.Segment(
            ids=np.array([2, 3]), parents=np.array([1, 2]), frames=np.array([5, 6]), recursive=np.zeros(2, bool)
        )
        with engine.begin() as conn:
            conn.execute(
                insert(SegmentRow).values(kind=FUNCTIONS, first_id=3, last_id=3, items=2, data=stackcodec.encode(again))
            )
        fresh = StackTree(engine)
        with pytest.raises(stackcodec.CorruptSegment, match="not all above the 2 loaded"):
            fresh.ensure(np.array([2], dtype=np.int64))
        assert int(fresh.function[2]) == 2  # node 2 is as the first segment stored it
    finally:
        engine.dispose()


def test_a_segment_commits_from_its_bytes_when_a_later_walk_replaced_its_nodes(database_url: str) -> None:
    """A segment's nodes go into the index from the walk's scratch once it commits; when another walk of the
    tree came in between (here: known stacks, resolved while the segment's transaction is open), they go in
    from the segment's own bytes, and the tree is the same as it would have been."""
    engine = make_engine(database_url)
    try:
        tree = StackTree(engine)
        known = tree.resolve([[1, 2], [1, 3]])
        frames = np.array([1, 2, 4, 1, 5, 6], dtype=np.int64)
        offsets = np.array([0, 3, 6], dtype=np.int64)
        with Appends(engine) as appends:
            leaves = tree.resolve_arrays(frames, offsets, appends=appends)
            assert tree.resolve([[1, 2], [1, 3]]) == known  # a walk of its own, before the commit
            assert tree.size == 3  # the new nodes are not handed out before their segment commits
        assert tree.size == 6
        assert [_paths(tree, int(leaf)) for leaf in leaves] == [(1, 2, 4), (1, 5, 6)]
        assert bool(tree.known[leaves].all())
        assert tree.resolve([[1, 2, 4], [1, 5, 6], [1, 2]]) == [*leaves.tolist(), known[0]]
        fresh = StackTree(engine)
        fresh.ensure(leaves)
        for name in ("parent", "function", "recursive"):
            assert getattr(fresh, name)[:7].tolist() == getattr(tree, name)[:7].tolist()
    finally:
        engine.dispose()


def test_columns_grow_in_place_within_their_reserved_room_and_by_copy_past_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree's columns past ``MAPPED_BYTES`` are views of mappings with room reserved: growing within it makes a longer
    view of the same memory (nothing copied), past it a copy. Either way the arrays a query held keep their values,
    and every node reads back as it was made."""
    from server.store import reserved as module

    monkeypatch.setattr(module, "RESERVED", 1 << 21)  # room for 2 Mi nodes, so the test passes it
    tree = StackTree(store.engine)
    stacks = [[1 + (i % 50), 100 + i] for i in range(140_000)]  # 140,050 nodes: every column a mapping
    leaves = tree.resolve(stacks)
    held = tree.parent
    assert held.nbytes >= module.MAPPED_BYTES
    assert isinstance(held.base, memoryview)
    before = held.copy()

    tree._grow(held.shape[0] + 1)  # within the reserved room: the same memory, a longer view
    assert tree.parent.shape[0] > held.shape[0]
    assert np.shares_memory(tree.parent, held)
    assert np.array_equal(tree.parent[: held.shape[0]], before)

    tree._grow((1 << 21) + 1)  # past it: a copy
    assert not np.shares_memory(tree.parent, held)
    assert np.array_equal(held, before)  # what a query held is unchanged
    assert np.array_equal(tree.parent[: held.shape[0]], before)
    for stack, leaf in zip(stacks[:200] + stacks[-200:], leaves[:200] + leaves[-200:], strict=True):
        assert _paths(tree, leaf) == tuple(stack)
    more = [[7, 10_000_000 + i] for i in range(10)]  # nodes added after growing read back too
    for stack, leaf in zip(more, tree.resolve(more), strict=True):
        assert _paths(tree, leaf) == tuple(stack)
