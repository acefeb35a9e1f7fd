"""The flame graph's array encoding equals a plain depth-first walk, to the type of every number.

server/query/flamegraph.py lays the levels out with sorts and sums over arrays. The reference
here is the walk it replaced, written out node by node: children in name order (a missing
name sorts as "", is labelled "?"), ``other`` last, names numbered as met, x offsets added one
sibling after another (what a divisor's float sums depend on). Random trees cover name ties
between functions, missing names, negative values (a drawn node whose parent is not), two
value columns on one axis or each on its own, ``drop_empty``, divisors, and values past 2**53.
The outputs are compared as JSON, so 1 and 1.0, or 0.0 and -0.0, differ.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from server.query.flamegraph import OTHER, FlameGraph, _kept, flamegraph
from server.query.tree import CallTree
from tests.support.calltrees import random_tree

NAMES = {0: "b", 1: "a", 2: "b"}  # 2 shares 0's name, 3 has none
Case = tuple[CallTree, dict[int, str], int, int, bool, bool]


def walk(
    tree: CallTree, names: dict[int, str], max_nodes: int, divisor: int, per_side: bool, drop_empty: bool
) -> FlameGraph:
    """The reference: the drawn nodes written by a depth-first walk in Python."""
    columns = len(tree.total)
    width = tree.totals.sum(axis=1)
    keep, truncated = _kept(tree, width, max_nodes, drop_empty)
    parent = tree.parent.tolist()
    drawn = [node for node in range(len(tree)) if keep[node]]
    children: dict[int, list[int]] = {}
    other: dict[int, list[int]] = {}
    for node in range(len(tree)):
        above = parent[node] if parent[node] >= 0 and keep[parent[node]] else -1
        if keep[node]:
            children.setdefault(above, []).append(node)
        elif parent[node] < 0 or keep[parent[node]]:
            folded = other.setdefault(above, [0] * columns)
            for c in range(columns):
                folded[c] += int(tree.totals[node, c])
    for siblings in children.values():
        siblings.sort(key=lambda node: names.get(int(tree.function[node]), ""))

    def scale(value: int) -> float:
        return value if divisor == 1 else value / divisor

    zero: float = 0 if divisor == 1 else 0.0
    sides = columns if per_side else 1
    numbered = {"total": 0}
    rows: list[list[float]] = []
    ends: list[list[float]] = []

    def emit(depth: int, starts: list[float], total: list[int], self_: list[int], name: str) -> list[float]:
        while len(rows) <= depth:
            rows.append([])
            ends.append([zero] * sides)
        spans = [scale(v) for v in total] if per_side else [scale(sum(total))]
        for side in range(sides):
            if per_side:
                rows[depth].append(starts[side] - ends[depth][side])
                rows[depth].extend((scale(total[side]), scale(self_[side])))
            else:
                rows[depth].append(starts[0] - ends[depth][0])
                for c in range(columns):
                    rows[depth].extend((scale(total[c]), scale(self_[c])))
            ends[depth][side] = starts[side] + spans[side]
        rows[depth].append(numbered.setdefault(name, len(numbered)))
        return spans

    root_total = [int(v) for v in tree.total]
    root_self = [int(v) for v in tree.root_self]
    emit(0, [zero] * sides, root_total, root_self, "total")
    stack: list[tuple[int, int, list[float]]] = [(-1, 0, [zero] * sides)]
    while stack:
        node, depth, x = stack.pop()
        offset = list(x)
        placed = []
        for child in children.get(node, []):
            total = [int(v) for v in tree.totals[child]]
            self_ = [int(v) for v in tree.selfs[child]]
            spans = emit(depth + 1, offset, total, self_, names.get(int(tree.function[child]), "?"))
            placed.append((child, depth + 1, offset))
            offset = [start + span for start, span in zip(offset, spans, strict=True)]
        if any(other.get(node, [])):
            emit(depth + 1, offset, other[node], other[node], OTHER)
        stack.extend(reversed(placed))
    candidates = [scale(v) for v in root_self] + [scale(int(v)) for node in drawn for v in tree.selfs[node]]
    return FlameGraph(
        names=list(numbered),
        levels=rows,
        total=scale(root_total[0]) if columns == 1 else [scale(v) for v in root_total],
        max_self=max([*candidates, 0]),
        nodes=sum(len(row) // ((3 * columns + 1) if per_side else (2 * columns + 2)) for row in rows),
        truncated=truncated,
    )


def with_selfs(tree: CallTree, selfs: np.ndarray, root_self: np.ndarray) -> CallTree:
    """``tree`` with other self values (one row per node, one column per side), totals summed again."""
    totals = selfs.copy()
    for node in reversed(range(len(tree))):
        if tree.parent[node] >= 0:
            totals[tree.parent[node]] += totals[node]
    return dataclasses.replace(
        tree,
        selfs=selfs,
        totals=totals,
        root_self=root_self,
        total=totals[tree.parent < 0].sum(axis=0) + root_self,
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    tree = random_tree(draw, max_size=60, max_self=9)
    # Names shared by two functions, missing, or the same as the labels "total" and "other" (allowed: as sent).
    labels = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "total", "other", None]), min_size=4, max_size=4))
    names = {function: label for function, label in enumerate(labels) if label is not None}
    columns = draw(st.sampled_from([1, 2]))
    n = len(tree)
    low = draw(st.sampled_from([0, 0, -3]))  # negative values now and then (a diff's parent narrower than a child)
    values = draw(st.lists(st.integers(low, 9), min_size=n * columns, max_size=n * columns))
    factor = draw(st.sampled_from([1, 1, 2**50]))  # sums past 2**53
    selfs = np.array(values, dtype=np.int64).reshape(n, columns) * factor
    root_self = np.array(draw(st.lists(st.integers(low, 5), min_size=columns, max_size=columns)), dtype=np.int64)
    return (
        with_selfs(tree, selfs, root_self * factor),
        names,
        draw(st.integers(0, 70)),
        draw(st.sampled_from([1, 1, 3, 7])),
        draw(st.booleans()),
        draw(st.booleans()),
    )


def as_json(graph: FlameGraph) -> str:
    return json.dumps(dataclasses.asdict(graph))


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_arrays_write_what_the_walk_writes(case: Case) -> None:
    tree, names, max_nodes, divisor, per_side, drop_empty = case
    expected = walk(tree, names, max_nodes, divisor, per_side, drop_empty)
    found = flamegraph(tree, names, max_nodes, divisor, per_side=per_side, drop_empty=drop_empty)
    assert as_json(found) == as_json(expected)


def test_a_deep_chain_and_a_wide_family() -> None:
    """Past the sizes random trees reach: 300 levels (pointer jumping's rounds) and 500 siblings."""
    parent = [-1] + list(range(299)) + [0] * 500
    function = [i % 3 for i in range(300)] + [i % 4 for i in range(500)]
    n = len(parent)
    tree = CallTree(
        node_ids=np.arange(n, dtype=np.int64),
        parent=np.array(parent, dtype=np.int64),
        function=np.array(function, dtype=np.int64),
        recursive=np.zeros(n, dtype=bool),
        selfs=np.zeros((n, 1), dtype=np.int64),
        totals=np.zeros((n, 1), dtype=np.int64),
        root_self=np.zeros(1, dtype=np.int64),
        total=np.zeros(1, dtype=np.int64),
    )
    tree = with_selfs(tree, (np.arange(n, dtype=np.int64) % 5).reshape(n, 1), np.zeros(1, dtype=np.int64))
    for max_nodes, divisor in ((2048, 1), (400, 1), (2048, 3)):
        expected = walk(tree, NAMES, max_nodes, divisor, False, False)
        assert as_json(flamegraph(tree, NAMES, max_nodes, divisor)) == as_json(expected)
