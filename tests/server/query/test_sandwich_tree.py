"""The sandwich trees computed on the node arrays equal the same trees counted stack by stack.

test_sandwich.py compares the root's children with ``go tool pprof -peek``; deeper nodes have no
pprof counterpart, so here random call trees (few function names, so F recurses directly and through
other functions, nested many times) are checked against the definition: each sample's stack, with
runs of F calling F as one F, adds its value once to every distinct path that starts at an F and goes
down (callees) or up (callers). And growing the trees only as far as ``max_nodes`` can draw gives the
same flame graph as growing them whole.
"""

from __future__ import annotations

from collections import defaultdict
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from server.query import sandwich as sandwich_module
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


def _stacks(tree: CallTree) -> list[tuple[list[int], int]]:
    """Each node's stack from the root, F runs as one F, and the value of the samples ending there."""
    stacks: list[list[int]] = []
    for above, name in zip(tree.parent.tolist(), tree.function.tolist(), strict=True):
        base = stacks[above] if above >= 0 else []
        stacks.append(base if base and base[-1] == F and name == F else [*base, name])
    return [(stack, int(tree.selfs[i, 0])) for i, stack in enumerate(stacks)]


def _expected(tree: CallTree) -> tuple[dict[Path, int], dict[Path, int]]:
    """The total per path below an F (callees) and per path above one, read upwards (callers)."""
    down: dict[Path, int] = defaultdict(int)
    up: dict[Path, int] = defaultdict(int)
    for stack, value in _stacks(tree):
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


def _by_path(tree: CallTree) -> dict[Path, int]:
    """The total of each node of a sandwich tree, by its path of functions from the root (F left out)."""
    paths: list[Path] = []
    for above, name in zip(tree.parent.tolist(), tree.function.tolist(), strict=True):
        paths.append((*(paths[above] if above >= 0 else ()), name))
    assert len(set(paths)) == len(paths), "two nodes with one path"
    return {path: int(tree.totals[i, 0]) for i, path in enumerate(paths)}


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
@given(trees(), st.integers(1, 12), st.sampled_from([1, 3, 256]))
def test_growing_only_what_can_be_drawn_draws_the_same(tree: CallTree, max_nodes: int, refresh: int) -> None:
    """Also with the cut of the widest worked out again after every wider node, or every few."""
    if not bool((tree.function == F).any()):
        return
    names = {i: f"f{i}" for i in range(4)}
    whole = sandwich(tree, F)
    with patch.object(sandwich_module, "_REFRESH", refresh):
        grown = sandwich(tree, F, max_nodes)
    for side in ("callers", "callees"):
        assert flamegraph(getattr(grown, side), names, max_nodes) == flamegraph(getattr(whole, side), names, max_nodes)
