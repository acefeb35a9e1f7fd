"""Same-name functions merged into one node (server.query.byname), on hand-made trees."""

from __future__ import annotations

from server.query.byname import by_name
from server.query.flamegraph import flamegraph
from tests.server.query.test_flamegraph import tree

# Ids 1 and 2 share a name (one per file), as do 3 and 4; 5 is alone.
NAMES = {1: "(anonymous)", 2: "(anonymous)", 3: "leaf", 4: "leaf", 5: "main"}


def test_merged_parents_merge_their_children() -> None:
    # main -> anon#1 -> leaf#3 (5), main -> anon#2 -> leaf#4 (7) and -> anon#1 (2): one box per name and level.
    calls = tree([-1, 0, 1, 0, 3, 3], [5, 1, 3, 2, 4, 1], [[0], [0], [5], [0], [7], [2]])
    merged = by_name(calls, NAMES)
    assert len(merged) == 4
    assert merged.function.tolist() == [5, 1, 3, 1]
    assert merged.parent.tolist() == [-1, 0, 1, 1]
    assert merged.selfs[:, 0].tolist() == [0, 0, 12, 2]
    assert merged.totals[:, 0].tolist() == [14, 14, 12, 2]
    assert merged.recursive.tolist() == [False, False, False, True]  # anon below anon: cum once per sample
    graph = flamegraph(merged, NAMES, 10)
    assert graph.levels == [[0, 14, 0, 0], [0, 14, 0, 1], [0, 14, 0, 2], [0, 2, 2, 2, 0, 12, 12, 3]]


def test_distinct_names_are_left_alone() -> None:
    calls = tree([-1, 0], [5, 3], [[0], [4]])
    assert by_name(calls, NAMES) is calls
