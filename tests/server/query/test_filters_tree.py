"""Removing frames from a call tree (``hide``, ``show``, ``show_from``) on its node arrays equals doing it
on each stack: every node's path of kept functions, the paths merged.

The pprof tests (test_filters.py) check the numbers of the top table, which stay right even if two
nodes that should be one were left apart; the flame graph needs them merged. Random trees with few
function names make removed frames lift children onto siblings of the same name often, and make the
merges cascade: two parents meeting make their children meet.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from server.query.filters import keep_frames
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
