"""The sandwich trees computed on the node arrays equal the same trees counted stack by stack.

test_sandwich.py compares the root's children with ``go tool pprof -peek``; deeper nodes have no
pprof counterpart, so here random call trees (few function names, so F recurses directly and through
other functions, nested many times) are checked against the definition: each sample's stack, with
runs of F calling F as one F, adds its value once to every distinct path that starts at an F and goes
down (callees) or up (callers). And growing the trees only as far as ``max_nodes`` can draw gives the
same flame graph as growing them whole. The growth itself (C) is also checked for the trees it
must refuse.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.query import _sandwich
from server.query.flamegraph import flamegraph
from server.query.sandwich import sandwich
from server.query.tree import CallTree
from tests.support.calltrees import random_tree

Path = tuple[int, ...]
F = 0


@st.composite
def trees(draw: st.DrawFn) -> CallTree:
    """A call tree (parents before children, distinct functions among siblings) with ``recursive`` set."""
    return random_tree(draw, max_size=70, max_self=9)


def _stacks(tree: CallTree, column: int = 0) -> list[tuple[list[int], int]]:
    """Each node's stack from the root, F runs as one F, and the value (of ``column``) of the samples ending there."""
    stacks: list[list[int]] = []
    for above, name in zip(tree.parent.tolist(), tree.function.tolist(), strict=True):
        base = stacks[above] if above >= 0 else []
        stacks.append(base if base and base[-1] == F and name == F else [*base, name])
    return [(stack, int(tree.selfs[i, column])) for i, stack in enumerate(stacks)]


def _expected(tree: CallTree, column: int = 0) -> tuple[dict[Path, int], dict[Path, int]]:
    """The total per path below an F (callees) and per path above one, read upwards (callers)."""
    down: dict[Path, int] = defaultdict(int)
    up: dict[Path, int] = defaultdict(int)
    for stack, value in _stacks(tree, column):
        below: set[Path] = set()
        above: set[Path] = set()
        for at, name in enumerate(stack):
            if name == F:
                below.update(tuple(stack[at + 1 : end]) for end in range(at + 2, len(stack) + 1))
                above.update(tuple(reversed(stack[start:at])) for start in range(at))
        for path in below:
            down[path] += value
        for path in above:
            up[path] += value
    return dict(down), dict(up)


def _by_path(tree: CallTree, column: int = 0) -> dict[Path, int]:
    """The total (of ``column``) of each node of a sandwich tree, by its path of functions from the root (F left
    out)."""
    paths: list[Path] = []
    for above, name in zip(tree.parent.tolist(), tree.function.tolist(), strict=True):
        paths.append((*(paths[above] if above >= 0 else ()), name))
    assert len(set(paths)) == len(paths), "two nodes with one path"
    return {path: int(tree.totals[i, column]) for i, path in enumerate(paths)}


@settings(max_examples=300, deadline=None)
@given(trees())
def test_sandwich_trees_count_each_sample_once_per_path(tree: CallTree) -> None:
    if not bool((tree.function == F).any()):
        return
    answer = sandwich(tree, F)
    callees, callers = _expected(tree)
    assert _by_path(answer.callees) == callees
    assert _by_path(answer.callers) == callers


@settings(max_examples=200, deadline=None)
@given(trees(), st.integers(1, 12))
def test_growing_only_what_can_be_drawn_draws_the_same(tree: CallTree, max_nodes: int) -> None:
    if not bool((tree.function == F).any()):
        return
    names = {i: f"f{i}" for i in range(4)}
    whole = sandwich(tree, F)
    grown = sandwich(tree, F, max_nodes)
    for side in ("callers", "callees"):
        assert flamegraph(getattr(grown, side), names, max_nodes) == flamegraph(getattr(whole, side), names, max_nodes)


def _two_columns(tree: CallTree, second: list[int]) -> CallTree:
    """``tree`` with a second value column whose selfs are ``second`` (its totals summed up the tree)."""
    selfs = np.column_stack([tree.selfs[:, 0], np.array(second, dtype=np.int64)])
    totals = selfs.copy()
    for index in reversed(range(len(tree))):
        if tree.parent[index] >= 0:
            totals[tree.parent[index]] += totals[index]
    total = totals[tree.parent < 0].sum(axis=0)
    return replace(tree, selfs=selfs, totals=totals, root_self=np.zeros(2, dtype=np.int64), total=total)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_each_value_column_is_counted_on_its_own(data: st.DataObject) -> None:
    """CPU profiles have two columns (samples, nanoseconds): each is summed apart, from its own selfs."""
    tree = data.draw(trees())
    if not bool((tree.function == F).any()):
        return
    both = _two_columns(tree, data.draw(st.lists(st.integers(0, 50), min_size=len(tree), max_size=len(tree))))
    answer = sandwich(both, F)
    for column in (0, 1):
        callees, callers = _expected(both, column)
        assert _by_path(answer.callees, column) == callees
        assert _by_path(answer.callers, column) == callers


def test_the_growth_refuses_a_tree_it_cannot_read() -> None:
    """Whatever would make it read outside the arrays is refused before anything is grown."""
    parent = np.array([-1, 0, 1], dtype=np.int64)
    function = np.array([1, 0, 2], dtype=np.int64)
    recursive = np.zeros(3, dtype=bool)
    values = np.array([[0], [1], [2]], dtype=np.int64)
    totals = np.array([[3], [3], [2]], dtype=np.int64)
    callers, callees = _sandwich.grow(parent, function, recursive, values, totals, 0, 0)
    assert np.frombuffer(callers[1], dtype=np.int64).tolist() == [1]  # F's caller
    assert np.frombuffer(callees[3], dtype=np.int64).tolist() == [2]  # F's callee, and its total
    with pytest.raises(ValueError, match="parent index in"):
        _sandwich.grow(np.array([-1, 2, 1], dtype=np.int64), function, recursive, values, totals, 0, 0)
    with pytest.raises(ValueError, match="function in"):
        _sandwich.grow(parent, np.array([1, 0, -2], dtype=np.int64), recursive, values, totals, 0, 0)
    with pytest.raises(ValueError, match="of one length"):
        _sandwich.grow(parent, function, recursive[:2], values, totals, 0, 0)
    with pytest.raises(ValueError, match="of one length"):
        _sandwich.grow(parent, function, recursive, values, totals[:2], 0, 0)
    with pytest.raises(ValueError, match="max_nodes in"):
        _sandwich.grow(parent, function, recursive, values, totals, 0, -1)
    # int32 indices (a tree gathered from the store) are read as int64 ones are; narrower ones are refused.
    narrow = _sandwich.grow(parent.astype(np.int32), function.astype(np.int32), recursive, values, totals, 0, 0)
    assert narrow == (callers, callees)
    with pytest.raises(ValueError, match="parent must be a column of int32 or int64"):
        _sandwich.grow(parent.astype(np.int16), function, recursive, values, totals, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="function must be a column of int32 or int64"):
        _sandwich.grow(parent, function.astype(np.uint32), recursive, values, totals, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recursive must be a column of bool"):
        _sandwich.grow(parent, function, recursive.astype(np.int8), values, totals, 0, 0)
