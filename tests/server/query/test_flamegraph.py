"""The flame graph encoding (server.query.flamegraph), called directly.

Hand-made trees, one per edge, with the expected levels written out (format
in docs/api.md: per node ``[gap, total, self, name]``): nothing but samples
with an empty stack, one sample, recursion, gaps left by a parent's self,
pruning (widest first, ties to the older node, the rest folded into
``other``), empty nodes, a diff in both layouts, averaging. Then a real
capture drawn whole and read back: every function's flat and cum equal
``go tool pprof -top``, and pruned, every parent still adds up.
"""

from __future__ import annotations

import numpy as np
import pytest

from server.ingest.profile import ingest
from server.query.aggregate import merge_selected
from server.query.flamegraph import FlameGraph, flamegraph, prune
from server.query.tree import CallTree, build_tree
from server.settings import Settings
from server.store.repository import Store
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

NAMES = {1: "a", 2: "b", 3: "c", 4: "main.fib", 5: "main.main", 6: "main.work"}


def tree(
    parent: list[int], function: list[int], selfs: list[list[int]], root_self: list[int] | None = None
) -> CallTree:
    """A call tree from its nodes (parents before children): totals propagated, as build_tree does."""
    columns = len(selfs[0]) if selfs else len(root_self or [0])
    self_matrix = np.array(selfs, dtype=np.int64).reshape(len(parent), columns)
    totals = self_matrix.copy()
    for node in range(len(parent) - 1, -1, -1):
        if parent[node] >= 0:
            totals[parent[node]] += totals[node]
    root = np.array(root_self or [0] * columns, dtype=np.int64)
    top_level = [node for node, p in enumerate(parent) if p < 0]
    return CallTree(
        node_ids=np.arange(1, len(parent) + 1, dtype=np.int64),
        parent=np.array(parent, dtype=np.int64),
        function=np.array(function, dtype=np.int64),
        recursive=np.zeros(len(parent), dtype=bool),
        selfs=self_matrix,
        totals=totals,
        root_self=root,
        total=totals[top_level].sum(axis=0) + root,
    )


def levels(graph: FlameGraph) -> list[list[float]]:
    return graph.levels


def test_no_stack_at_all_is_the_root_alone() -> None:
    assert flamegraph(tree([], [], [], [0]), NAMES, 10) == FlameGraph(
        names=["total"], levels=[[0, 0, 0, 0]], total=0, max_self=0, nodes=1, truncated=False
    )
    only_empty_stacks = flamegraph(tree([], [], [], [7]), NAMES, 10)
    assert (only_empty_stacks.levels, only_empty_stacks.max_self) == ([[0, 7, 7, 0]], 7)


def test_one_sample() -> None:
    assert flamegraph(tree([-1, 0], [5, 6], [[0], [5]]), NAMES, 10) == FlameGraph(
        names=["total", "main.main", "main.work"],
        levels=[[0, 5, 0, 0], [0, 5, 0, 1], [0, 5, 5, 2]],
        total=5,
        max_self=5,
        nodes=3,
        truncated=False,
    )


def test_recursion_draws_one_level_per_frame() -> None:
    graph = flamegraph(tree([-1, 0, 1], [4, 4, 4], [[0], [2], [3]]), NAMES, 10)
    assert graph.names == ["total", "main.fib"]
    assert graph.levels == [[0, 5, 0, 0], [0, 5, 0, 1], [0, 5, 2, 1], [0, 3, 3, 1]]


def test_siblings_in_name_order_and_gaps_where_a_parent_has_self() -> None:
    # b (self 3) -> c (1); a -> c (2): a is drawn first, whatever the node order.
    graph = flamegraph(tree([-1, 0, -1, 2], [2, 3, 1, 3], [[3], [1], [0], [2]], [1]), NAMES, 10)
    assert graph.names == ["total", "a", "b", "c"]  # indexed as first drawn, level by level
    assert graph.levels == [
        [0, 7, 1, 0],
        [0, 2, 0, 1, 0, 4, 3, 2],  # a over [0, 2), b over [2, 6)
        [0, 2, 2, 3, 0, 1, 1, 3],  # c under a at 0, c under b at 2
    ]
    # a (self 3) -> c (1); b -> main.work (2): b's child starts at 4, so a's self leaves a gap of 3 below it.
    gapped = flamegraph(tree([-1, 0, -1, 2], [1, 3, 2, 6], [[3], [1], [0], [2]]), NAMES, 10)
    assert levels(gapped)[1:] == [[0, 4, 3, 1, 0, 2, 0, 2], [0, 1, 1, 3, 3, 2, 2, 4]]


def test_pruning_keeps_the_widest_and_folds_the_rest_into_other() -> None:
    # a (self 2) -> d (3); b (5); c (1). Widths: a 5, b 5, c 1, d 3.
    nodes = tree([-1, -1, -1, 0], [1, 2, 3, 6], [[2], [5], [1], [3]])
    graph = flamegraph(nodes, NAMES, 2)
    assert graph.truncated is True
    assert graph.names == ["total", "a", "b", "other"]
    assert graph.levels == [
        [0, 11, 0, 0],
        [0, 5, 2, 1, 0, 5, 5, 2, 0, 1, 1, 3],  # c folded into the root's "other", drawn last
        [0, 3, 3, 3],  # d folded into a's "other"
    ]
    assert graph.nodes == 5
    one = flamegraph(nodes, NAMES, 1)  # a and b tie: the older node (lower id) stays
    assert one.names == ["total", "a", "other"]
    assert levels(one)[1] == [0, 5, 2, 1, 0, 6, 6, 2]
    untouched = prune(nodes, 4)
    assert untouched.truncated is False and untouched.other_parent.size == 0


def test_empty_nodes_are_dropped_only_when_asked_and_only_without_negatives() -> None:
    nodes = tree([-1, -1], [1, 2], [[4], [0]])
    assert levels(flamegraph(nodes, NAMES, 10))[1] == [0, 4, 4, 1, 0, 0, 0, 2]
    assert levels(flamegraph(nodes, NAMES, 10, drop_empty=True))[1] == [0, 4, 4, 1]
    with_negative = tree([-1, -1, -1], [1, 2, 3], [[4], [0], [-1]])
    assert len(levels(flamegraph(with_negative, NAMES, 10, drop_empty=True))[1]) == 12  # all three kept


def test_a_diff_in_both_layouts() -> None:
    # Base then comparison: main (0, 0) -> work (2, 3).
    diff = tree([-1, 0], [5, 6], [[0, 0], [2, 3]])
    shared = flamegraph(diff, NAMES, 10)
    assert shared.total == [2, 3] and shared.max_self == 3
    assert shared.levels == [[0, 2, 0, 3, 0, 0], [0, 2, 0, 3, 0, 1], [0, 2, 2, 3, 3, 2]]
    two_axes = flamegraph(tree([-1, -1], [1, 2], [[2, 1], [1, 3]]), NAMES, 10, per_side=True)
    assert two_axes.levels == [[0, 3, 0, 0, 4, 0, 0], [0, 2, 2, 0, 1, 1, 1, 0, 1, 1, 0, 3, 3, 2]]
    assert two_axes.nodes == 3


def test_a_divisor_averages_and_makes_every_value_a_float() -> None:
    graph = flamegraph(tree([-1, 0], [5, 6], [[0], [5]]), NAMES, 10, divisor=2)
    assert graph.levels == [[0.0, 2.5, 0.0, 0], [0.0, 2.5, 0.0, 1], [0.0, 2.5, 2.5, 2]]
    assert all(isinstance(v, float) for level in levels(graph) for v in level[:3])
    assert (graph.total, graph.max_self) == (2.5, 2.5)


def _drawn(graph: FlameGraph) -> list[tuple[str, int, int, int]]:
    """(name, total, self, parent index) of every drawn node, parents found by position on the level above."""
    names = graph.names
    nodes: list[tuple[str, int, int, int]] = []
    above: list[tuple[int, int]] = []  # (start, index) on the level above, left to right
    for depth, level in enumerate(levels(graph)):
        here: list[tuple[int, int]] = []
        end = 0
        for at in range(0, len(level), 4):
            gap, total, self_, name = (int(v) for v in level[at : at + 4])
            start = end + gap
            end = start + total
            parent = -1 if depth == 0 else max(index for first, index in above if first <= start)
            here.append((start, len(nodes)))
            nodes.append((names[name], total, self_, parent))
        above = here
    return nodes


@pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)
def test_a_real_capture_drawn_whole_equals_pprof(store: Store, settings: Settings) -> None:
    path = DATA / "cpu.pb.gz"
    stored = ingest(store, settings, path.read_bytes(), {"service": "demo"}, "cpu", 1_790_000_000 * 10**9).stored
    meta = store.profiles.get(stored.id)
    assert meta is not None
    merged = merge_selected(store, [meta], "cpu", "nanoseconds", "sum")
    calls = build_tree(store.stacks, merged.nodes, merged.values)
    names = store.functions.names(set(calls.function.tolist()))
    expected = pprof_top([path], "cpu", "nanoseconds")

    whole = flamegraph(calls, names, 100_000)
    assert whole.truncated is False and whole.total == expected.total
    drawn = _drawn(whole)[1:]  # the root is "total", not a function
    flat: dict[str, int] = {}
    cum: dict[str, int] = {}
    for name, total, self_, parent in drawn:
        flat[name] = flat.get(name, 0) + self_
        ancestors = set()
        up = parent
        while up > 0:  # drawn indices are off by one: the root took index 0
            ancestors.add(drawn[up - 1][0])
            up = drawn[up - 1][3]
        if name not in ancestors:  # a recursive function counts once per stack, as pprof counts it
            cum[name] = cum.get(name, 0) + total
    assert {name: (flat[name], cum[name]) for name in cum} == expected.rows

    pruned = _drawn(flamegraph(calls, names, 12))
    assert len(pruned) == 13 + sum(1 for name, *_ in pruned if name == "other")  # the root, 12 nodes, the folds
    for index, (_, total, self_, _) in enumerate(pruned):
        children = sum(t for _, t, _, parent in pruned if parent == index)
        assert children + self_ == total  # "other" holds exactly what was folded away
