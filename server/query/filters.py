"""pprof's frame filters (focus, ignore, hide, show, show_from) applied to a merged call tree.

The semantics are ``go tool pprof``'s, checked against it by the tests:

- a frame matches when the pattern is found anywhere (unanchored) in its
  function name or its file name;
- ``focus`` keeps samples with a matching frame, ``ignore`` drops them; both
  look at the original stack, before any frame is hidden;
- ``hide`` removes matching frames, ``show`` keeps only matching ones; a
  sample left with no frame is dropped;
- ``show_from`` then keeps each stack from its leaf up to its root-most
  matching frame, and drops samples with none.

The total the caller reports stays the unfiltered one, as pprof's percentages do.

A sample is its leaf node in the tree, so every filter works per node, in
time proportional to the tree and not to the samples behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.query.regex import Regex, RegexError, compile_regex
from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Query parameter names, in the order pprof applies them.
FILTER_PARAMS = ("focus", "ignore", "hide", "show", "show_from")


class FilterError(ValueError):
    """A filter pattern that does not compile; ``str()`` names the parameter."""


@dataclass(frozen=True, slots=True)
class Filters:
    focus: Regex | None = None
    ignore: Regex | None = None
    hide: Regex | None = None
    show: Regex | None = None
    show_from: Regex | None = None

    @property
    def active(self) -> bool:
        return any(getattr(self, name) is not None for name in FILTER_PARAMS)


def parse_filters(values: Mapping[str, str | None]) -> Filters:
    """Compile the non-empty patterns among ``values``; a bad one raises :class:`FilterError` naming it."""
    compiled: dict[str, Regex] = {}
    for name in FILTER_PARAMS:
        pattern = values.get(name)
        if not pattern:
            continue
        try:
            compiled[name] = compile_regex(pattern)
        except RegexError as exc:
            raise FilterError(f"{name}: {exc}") from None
    return Filters(**compiled)


def apply_filters(tree: CallTree, filters: Filters, frames: Mapping[int, tuple[str, str]]) -> CallTree:
    """The tree of the samples and frames ``filters`` keep; ``frames`` maps function id to (name, file)."""
    if not filters.active or len(tree) == 0:
        return tree
    selfs = tree.selfs.copy()
    root_self = tree.root_self.copy()
    if filters.focus is not None:
        keep = _on_path(tree, _matches(tree, filters.focus, frames))
        selfs[~keep] = 0
        root_self[:] = 0
    if filters.ignore is not None:
        selfs[_on_path(tree, _matches(tree, filters.ignore, frames))] = 0
    kept = np.ones(len(tree), dtype=bool)
    if filters.hide is not None:
        kept &= ~_matches(tree, filters.hide, frames)
    if filters.show is not None:
        kept &= _matches(tree, filters.show, frames)
    if filters.hide is not None or filters.show is not None:
        root_self[:] = 0  # an empty stack has no frame to show; pprof drops it too
    start = np.full(len(tree), -1, dtype=np.int64)  # root-most show_from match on each path, -1: none
    if filters.show_from is not None:
        start = _root_most(tree, _matches(tree, filters.show_from, frames) & kept)
        root_self[:] = 0
    return _reintern(tree, selfs, root_self, kept, start, filters.show_from is not None)


def _matches(tree: CallTree, regex: Regex, frames: Mapping[int, tuple[str, str]]) -> BoolArray:
    """Per node: does its frame's function name or file name contain a match."""
    functions, index = np.unique(tree.function, return_inverse=True)
    hit = np.array(
        [
            regex.search(frames.get(int(f), ("", ""))[0]) or regex.search(frames.get(int(f), ("", ""))[1])
            for f in functions
        ],
        dtype=bool,
    )
    result: BoolArray = hit[index] if functions.size else np.zeros(0, dtype=bool)
    return result


def _on_path(tree: CallTree, match: BoolArray) -> BoolArray:
    """Per node: does the path from the root to it hold a matching frame (parents precede children)."""
    on_path = match.copy()
    for node in range(len(tree)):
        parent = tree.parent[node]
        if parent >= 0 and on_path[parent]:
            on_path[node] = True
    return on_path


def _root_most(tree: CallTree, match: BoolArray) -> IntArray:
    """Per node: the root-most matching node on its path, or -1."""
    start = np.full(len(tree), -1, dtype=np.int64)
    for node in range(len(tree)):
        parent = tree.parent[node]
        if parent >= 0 and start[parent] >= 0:
            start[node] = start[parent]
        elif match[node]:
            start[node] = node
    return start


def _reintern(
    tree: CallTree, selfs: IntArray, root_self: IntArray, kept: BoolArray, start: IntArray, cut: bool
) -> CallTree:
    """Rebuild the tree with unkept frames removed and, when ``cut``, each path begun at ``start``."""
    new_of = np.full(len(tree), -1, dtype=np.int64)  # new index of the node's kept path, -1: empty path
    children: dict[tuple[int, int], int] = {}
    parents: list[int] = []
    functions: list[int] = []
    for node in range(len(tree)):
        parent = int(tree.parent[node])
        if cut and start[node] < 0:
            continue
        above = -1 if parent < 0 or (cut and node == start[node]) else int(new_of[parent])
        if not kept[node]:
            new_of[node] = above
            continue
        key = (above, int(tree.function[node]))
        index = children.get(key)
        if index is None:
            index = len(parents)
            children[key] = index
            parents.append(above)
            functions.append(key[1])
        new_of[node] = index
    return _from_selfs(
        tree, np.array(parents, dtype=np.int64), np.array(functions, dtype=np.int64), new_of, selfs, root_self
    )


def _from_selfs(
    tree: CallTree, parent: IntArray, function: IntArray, new_of: IntArray, selfs: IntArray, root_self: IntArray
) -> CallTree:
    columns = selfs.shape[1]
    new_selfs = np.zeros((parent.shape[0], columns), dtype=np.int64)
    landed = new_of >= 0
    np.add.at(new_selfs, new_of[landed], selfs[landed])
    totals = new_selfs.copy()
    for node in range(parent.shape[0] - 1, -1, -1):  # children come after their parents
        if parent[node] >= 0:
            totals[parent[node]] += totals[node]
    recursive = np.zeros(parent.shape[0], dtype=bool)
    for node in range(parent.shape[0]):
        above = int(parent[node])
        while above >= 0 and not recursive[node]:
            recursive[node] = function[above] == function[node]
            above = int(parent[above])
    return CallTree(
        node_ids=np.arange(parent.shape[0], dtype=np.int64),
        parent=parent,
        function=function,
        recursive=recursive,
        selfs=new_selfs,
        totals=totals,
        root_self=root_self,
        total=tree.total.copy(),
    )
