"""Removing frames from a call tree (``hide``, ``show``, ``show_from``) on its node arrays equals doing it
on each stack: every node's path of kept functions, the paths merged.

The pprof tests (test_filters.py) check the numbers of the top table, which stay right even if two
nodes that should be one were left apart; the flame graph needs them merged. Random trees with few
function names make removed frames lift children onto siblings of the same name often, and make the
merges cascade: two parents meeting make their children meet. The kept tree's C pass is also checked
for what it must refuse.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.query import _filters
from server.query.filters import Filters, filter_tree, keep_frames
from server.query.regex import compile_regex
from server.query.tree import CallTree
from tests.support.calltrees import random_tree

Path = tuple[int, ...]


@st.composite
def trees(draw: st.DrawFn) -> tuple[CallTree, np.ndarray]:
    """A call tree (parents before children, distinct functions among siblings) and a mask of kept nodes."""
    tree = random_tree(draw, max_size=60, max_self=5)
    kept = np.array(draw(st.lists(st.booleans(), min_size=len(tree), max_size=len(tree))), dtype=bool)
    return tree, kept


def _kept_paths(tree: CallTree, kept: np.ndarray) -> list[Path]:
    """Each node's functions from the root down, the removed ones left out."""
    paths: list[Path] = []
    for index, (above, name) in enumerate(zip(tree.parent.tolist(), tree.function.tolist(), strict=True)):
        base = paths[above] if above >= 0 else ()
        paths.append((*base, name) if kept[index] else base)
    return paths


def _by_path(tree: CallTree) -> dict[Path, tuple[int, int]]:
    """(self, total) per node of ``tree``, keyed by its path of functions."""
    paths = _kept_paths(tree, np.ones(len(tree), dtype=bool))
    return {path: (int(tree.selfs[i, 0]), int(tree.totals[i, 0])) for i, path in enumerate(paths)}


@settings(max_examples=300, deadline=None)
@given(trees())
def test_removed_frames_merge_the_paths_they_leave(case: tuple[CallTree, np.ndarray]) -> None:
    tree, kept = case
    result, new_of = keep_frames(tree, kept)
    paths = _kept_paths(tree, kept)
    expected_self: dict[Path, int] = defaultdict(int)
    expected_total: dict[Path, int] = defaultdict(int)
    for index, path in enumerate(paths):
        if path:
            expected_self[path] += int(tree.selfs[index, 0])
    for path, value in list(expected_self.items()):
        for cut in range(1, len(path) + 1):
            expected_total[path[:cut]] += value
    got = _by_path(result)
    assert len(got) == len(result), "two nodes of the result have the same path"
    assert got == {path: (expected_self[path], expected_total[path]) for path in expected_total}
    assert all(result.parent[i] < i for i in range(len(result))), "a parent comes after its child"
    new_paths = _kept_paths(result, np.ones(len(result), dtype=bool))
    for index, path in enumerate(paths):
        assert (new_paths[new_of[index]] if new_of[index] >= 0 else ()) == path


@st.composite
def cut_trees(draw: st.DrawFn) -> tuple[CallTree, Filters]:
    """A call tree and show_from (one or two of its four functions), with a hidden function and a focused
    one, or none."""
    tree = random_tree(draw, max_size=60, max_self=5)
    shown = draw(st.sets(st.integers(0, 3), min_size=1, max_size=2))
    hidden = draw(st.none() | st.integers(0, 3))
    focused = draw(st.none() | st.integers(0, 3))
    return tree, Filters(
        focus=None if focused is None else compile_regex(f"^f{focused}$"),
        hide=None if hidden is None else compile_regex(f"^f{hidden}$"),
        show_from=compile_regex("|".join(f"^f{name}$" for name in sorted(shown))),
    )


@settings(max_examples=300, deadline=None)
@given(cut_trees())
def test_show_from_cuts_each_stack_and_keeps_recursion_only_below_the_cut(case: tuple[CallTree, Filters]) -> None:
    """Per stack: stacks without the focused frame go, hidden frames go, then everything above the
    root-most match; a node is recursive when its function is on its kept path above it (the cut may
    take that frame away)."""
    tree, filters = case
    assert filters.show_from is not None
    frames = {name: (f"f{name}", "") for name in range(4)}
    full = _kept_paths(tree, np.ones(len(tree), dtype=bool))
    expected_self: dict[Path, int] = defaultdict(int)
    for index, path in enumerate(full):
        if filters.focus is not None and not any(filters.focus.search(f"f{name}") for name in path):
            continue
        visible = [name for name in path if filters.hide is None or not filters.hide.search(f"f{name}")]
        starts = [at for at, name in enumerate(visible) if filters.show_from.search(f"f{name}")]
        if starts:
            expected_self[tuple(visible[starts[0] :])] += int(tree.selfs[index, 0])
    expected_total: dict[Path, int] = defaultdict(int)
    for path, value in expected_self.items():
        for cut in range(1, len(path) + 1):
            expected_total[path[:cut]] += value
    expected = {path: total for path, total in expected_total.items() if total}
    result = filter_tree(tree, filters, frames).tree
    paths = _kept_paths(result, np.ones(len(result), dtype=bool))
    assert len(set(paths)) == len(paths), "two nodes of the result have the same path"
    assert {path: int(result.totals[i, 0]) for i, path in enumerate(paths)} == expected
    assert {path: int(result.selfs[i, 0]) for i, path in enumerate(paths)} == {p: expected_self[p] for p in expected}
    assert [bool(flag) for flag in result.recursive] == [path[-1] in path[:-1] for path in paths]


def _kept_tree(up: list[int] | None, kept: list[bool]) -> tuple[list[int], list[int], list[int]]:
    """``_filters.keep`` of the chain 0 <- 1 <- 2 (functions 0, 1, 2): new_of, nodes, new_parent."""
    parent = np.array([-1, 0, 1], dtype=np.int64)
    function = np.array([0, 1, 2], dtype=np.int64)
    given_up = None if up is None else np.array(up, dtype=np.int64)
    made = _filters.keep(parent, function, np.array(kept, dtype=bool), given_up)
    new_of, nodes, new_parent = (np.frombuffer(column, dtype=np.int64).tolist() for column in made)
    return new_of, nodes, new_parent


def _keep_by_paths(parent: list[int], function: list[int], kept: list[bool]) -> tuple[list[int], list[int], list[int]]:
    """What ``_filters.keep`` makes, from each node's path of kept functions: one new node a path, numbered in
    the order of its lowest original node."""
    paths: list[Path] = []
    node_of: dict[Path, int] = {}
    nodes: list[int] = []
    new_parent: list[int] = []
    new_of: list[int] = []
    for index, (above, name) in enumerate(zip(parent, function, strict=True)):
        base = paths[above] if above >= 0 else ()
        path = (*base, name) if kept[index] else base
        paths.append(path)
        if path and path not in node_of:
            node_of[path] = len(nodes)
            nodes.append(index)
            new_parent.append(node_of[path[:-1]] if len(path) > 1 else -1)
        new_of.append(node_of[path] if path else -1)
    return new_of, nodes, new_parent


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kept_tree_of_a_big_tree_is_one_node_a_path(seed: int) -> None:
    """Thousands of nodes with few names: the table of paths grows many times over, and paths met first from
    one place are met again later from another (the second original node of a new node comes after the
    first one's children, which were made without a lookup), both through removed frames and without."""
    rng = np.random.default_rng(seed)
    parent: list[int] = []
    function: list[int] = []
    taken: set[tuple[int, int]] = set()
    while len(parent) < 20_000:
        above = int(rng.integers(-1, len(parent))) if parent and rng.random() < 0.3 else len(parent) - 1
        name = int(rng.integers(0, 40))
        if (above, name) not in taken:
            taken.add((above, name))
            parent.append(above)
            function.append(name)
    for share in (0.0, 0.1, 0.5):  # removed: none, a few, half
        kept = (rng.random(len(parent)) >= share).tolist()
        expected = _keep_by_paths(parent, function, kept)
        for width in (np.int64, np.int32):  # int32 columns (a tree gathered from the store) are read the same
            columns = np.array(parent, dtype=width), np.array(function, dtype=width)
            made = _filters.keep(*columns, np.array(kept, dtype=bool), None)  # type: ignore[arg-type]
            got = tuple(np.frombuffer(column, dtype=np.int64).tolist() for column in made)
            assert got == expected


def test_the_kept_tree_lands_nodes_on_their_nearest_kept_one_and_refuses_what_it_cannot_read() -> None:
    assert _kept_tree(None, [True, False, True]) == ([0, 0, 1], [0, 2], [-1, 0])
    # A given up may name a node dropped since (show_from drops empty nodes after working it out): what it
    # covers lands nowhere, and a kept node below it hangs off the root.
    assert _kept_tree([0, 0, 2], [False, False, True]) == ([-1, -1, 0], [2], [-1])
    parent = np.array([-1, 0, 1], dtype=np.int64)
    function = np.array([0, 1, 2], dtype=np.int64)
    kept = np.ones(3, dtype=bool)
    with pytest.raises(ValueError, match="parent index in"):
        _filters.keep(np.array([-1, 2, 1], dtype=np.int64), function, kept, None)
    with pytest.raises(ValueError, match="function in"):
        _filters.keep(parent, np.array([0, -1, 2], dtype=np.int64), kept, None)
    with pytest.raises(ValueError, match="up in"):
        _filters.keep(parent, function, kept, np.array([0, 2, 2], dtype=np.int64))  # below the node
    with pytest.raises(ValueError, match="itself when kept"):
        _filters.keep(parent, function, kept, np.array([0, 0, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="of one length"):
        _filters.keep(parent, function, kept[:2], None)
    with pytest.raises(ValueError, match="kept must be a column of bool"):
        _filters.keep(parent, function, kept.astype(np.int64), None)
    with pytest.raises(ValueError, match="function must be a column of int32 or int64"):
        _filters.keep(parent, function.astype(np.float64), kept, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parent index in"):
        _filters.keep(np.array([-1, 2, 1], dtype=np.int32), function.astype(np.int32), kept, None)


def test_matches_reach_every_node_below_them_and_bad_columns_are_refused() -> None:
    parent = np.array([-1, 0, 1, -1, 3], dtype=np.int64)
    bits = np.array([0, 1, 0, 2, 0], dtype=np.uint8)
    _filters.on_paths(parent, bits)
    assert bits.tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="parent index in"):
        _filters.on_paths(np.array([-1, 1], dtype=np.int64), np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError, match="of one length"):
        _filters.on_paths(parent, np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="bits must be a writable column of uint8"):
        _filters.on_paths(parent, np.zeros(5, dtype=np.int8))
    narrow = np.array([0, 1, 0, 2, 0], dtype=np.uint8)
    _filters.on_paths(parent.astype(np.int32), narrow)  # int32 parents are read the same
    assert narrow.tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="parent must be a column of int32 or int64"):
        _filters.on_paths(parent.astype(np.int8), narrow)  # type: ignore[arg-type]


def test_kept_recursion_reads_the_nearest_same_function_ancestor_and_refuses_what_it_cannot_read() -> None:
    # 0:f0 <- 1:f1 <- 2:f0 <- 3:f1 <- 4:f0; node 1 has no f1 above it.
    parent = np.array([-1, 0, 1, 2, 3], dtype=np.int64)
    function = np.array([0, 1, 0, 1, 0], dtype=np.int64)
    kept = np.array([False, True, True, True, True])
    asked = np.array([4, 3, 2, 1], dtype=np.int64)
    # 4's nearest f0 is 2 (kept), 3's f1 is 1 (kept), 2's f0 is 0 (not kept), 1 has none.
    assert list(_filters.kept_recursion(parent, function, kept, asked)) == [1, 1, 0, 0]
    narrow = _filters.kept_recursion(parent.astype(np.int32), function.astype(np.int32), kept, asked)
    assert list(narrow) == [1, 1, 0, 0]  # int32 columns are read the same
    with pytest.raises(ValueError, match="of one length"):
        _filters.kept_recursion(parent, function[:4], kept, asked)
    with pytest.raises(ValueError, match="every node in"):
        _filters.kept_recursion(parent, function, kept, np.array([5], dtype=np.int64))
    with pytest.raises(ValueError, match="parent index in"):
        _filters.kept_recursion(np.array([-1, 0, 3, 2, 3], dtype=np.int64), function, kept, asked)
    with pytest.raises(ValueError, match="kept must be a column of bool"):
        _filters.kept_recursion(parent, function, kept.astype(np.int64), asked)
    with pytest.raises(ValueError, match="function must be a column of int32 or int64"):
        _filters.kept_recursion(parent, function.astype(np.uint16), kept, asked)  # type: ignore[arg-type]
