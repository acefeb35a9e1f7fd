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

pprof's percentages keep dividing by the unfiltered total; the filtered tree's
own ``total`` is what survives (pprof's "accounting for"), so a flame graph of
it is whole. Callers that report pprof's total read it before filtering.

A sample is its leaf node in the tree, so every filter works per node, in
time proportional to the tree and not to the samples behind it, and in numpy:
one pass per depth level (a handful of array operations each), as
:mod:`server.query.tree` propagates totals.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.errors import InvalidParameter
from server.query.regex import Regex, RegexError, compile_regex
from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Query parameter names, in the order pprof applies them.
FILTER_PARAMS = ("focus", "ignore", "hide", "show", "show_from")


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


NO_FILTERS = Filters()


def parse_filters(values: Mapping[str, str | None]) -> Filters:
    """Compile the non-empty patterns among ``values``; a bad one is refused naming its parameter."""
    compiled: dict[str, Regex] = {}
    for name in FILTER_PARAMS:
        pattern = values.get(name)
        if not pattern:
            continue
        try:
            compiled[name] = compile_regex(pattern)
        except RegexError as exc:
            raise InvalidParameter(name, str(exc)) from None
    return Filters(**compiled)


@dataclass(frozen=True, slots=True)
class Filtered:
    """The filtered tree, and where each node of the original went.

    ``new_of[i]`` is the filtered node holding original node ``i``'s samples, -1 when they are dropped;
    ``keeps_empty`` whether samples with an empty stack stay.
    """

    tree: CallTree
    new_of: IntArray
    keeps_empty: bool


def apply_filters(
    tree: CallTree,
    filters: Filters,
    frames: Mapping[int, tuple[str, str]],
    depth: IntArray | None = None,
    owner: object | None = None,
) -> CallTree:
    """The tree of the samples and frames ``filters`` keep; ``frames`` maps function id to (name, file).

    ``depth`` (per node, any numbering that grows by one per level) saves working it out from ``parent``.
    ``owner`` is the table whose ids the tree's frames are (a store's functions, or its line frames):
    matches are remembered per owner, never across two numberings.
    """
    if not filters.active:
        return tree
    return filter_tree(tree, filters, frames, depth, owner).tree


def filter_tree(
    tree: CallTree,
    filters: Filters,
    frames: Mapping[int, tuple[str, str]],
    depth: IntArray | None = None,
    owner: object | None = None,
) -> Filtered:
    """:func:`apply_filters`, keeping the map from original nodes to filtered ones (exports need it)."""
    n = len(tree)
    levels = _levels(tree.parent) if depth is None else _by_depth(depth)
    parent = tree.parent
    keep_samples = np.ones(n, dtype=bool)
    keep_root = True  # samples with an empty stack
    if filters.focus is not None:
        keep_samples &= _on_path(levels, parent, _matches(tree, filters.focus, frames, owner))
        keep_root = False
    if filters.ignore is not None:
        keep_samples &= ~_on_path(levels, parent, _matches(tree, filters.ignore, frames, owner))
    kept = np.ones(n, dtype=bool)
    if filters.hide is not None:
        kept &= ~_matches(tree, filters.hide, frames, owner)
    if filters.show is not None:
        kept &= _matches(tree, filters.show, frames, owner)
    if filters.show_from is not None:
        # Root-most match among the frames still shown; the frames above it go, stacks without one go too.
        # A node at or below a match (on_path) is at or below the root-most one.
        kept &= _on_path(levels, parent, _matches(tree, filters.show_from, frames, owner) & kept)
    if filters.hide is not None or filters.show is not None or filters.show_from is not None:
        keep_root = False  # an empty stack has no frame to show; pprof drops it too
    columns = tree.selfs.shape[1]
    root_self = tree.root_self.copy() if keep_root else np.zeros(columns, dtype=np.int64)
    if filters.hide is None and filters.show is None and filters.show_from is None:
        # Only samples go: the same nodes, their values recomputed.
        selfs = np.where(keep_samples[:, None], tree.selfs, 0)
        result = _with_totals(parent, tree.function, tree.recursive, selfs, root_self, levels)
        result, moved = _drop_empty(result)
        return Filtered(result, np.where(keep_samples, moved, -1), keep_root)
    # Nodes in original order; ``new_of`` per node: the filtered node at or above it.
    new_of, new_parent, new_function, new_levels = _reintern(levels, parent, tree.function, kept)
    landed = keep_samples & (new_of >= 0)
    selfs = np.zeros((new_parent.shape[0], columns), dtype=np.int64)
    np.add.at(selfs, new_of[landed], tree.selfs[landed])
    recursive = _recursive(tree, new_of, new_parent, new_function, kept, filters.show_from is not None)
    result = _with_totals(new_parent, new_function, recursive, selfs, root_self, new_levels)
    result, moved = _drop_empty(result)
    moved = np.append(moved, -1)  # position -1 (no node) stays -1
    new_of = np.where(landed, moved[new_of], -1)
    return Filtered(result, new_of, keep_root)


def keep_frames(tree: CallTree, kept: BoolArray) -> CallTree:
    """``tree`` without the frames not ``kept`` (as ``hide`` removes them); samples with no frame left go.

    Frames are removed per node here, not per function, so ``recursive`` is not carried over (it is all false).
    """
    levels = _levels(tree.parent)
    new_of, new_parent, new_function, new_levels = _reintern(levels, tree.parent, tree.function, kept)
    landed = new_of >= 0
    selfs = np.zeros((new_parent.shape[0], tree.selfs.shape[1]), dtype=np.int64)
    np.add.at(selfs, new_of[landed], tree.selfs[landed])
    recursive = np.zeros(new_parent.shape[0], dtype=bool)
    return _with_totals(new_parent, new_function, recursive, selfs, np.zeros_like(tree.root_self), new_levels)


def levels_of(parent: IntArray) -> list[IntArray]:
    """Node indexes per depth, root's children first (a parent's index is below its children's)."""
    return _levels(parent)


def _levels(parent: IntArray) -> list[IntArray]:
    """Node indexes per depth, root's children first (a parent's index is below its children's)."""
    n = parent.shape[0]
    if n == 0:
        return []
    # List ranking by pointer doubling: log2(depth) passes over the nodes.
    depth = np.ones(n, dtype=np.int64)
    jump = parent.copy()
    while bool((jump >= 0).any()):
        live = jump >= 0
        safe = np.maximum(jump, 0)
        depth = depth + np.where(live, depth[safe], 0)
        jump = np.where(live, jump[safe], -1)
    return _by_depth(depth)


def _by_depth(depth: IntArray) -> list[IntArray]:
    """Node indexes grouped by depth, shallowest first, in index order within a level."""
    if depth.shape[0] == 0:
        return []
    order = np.argsort(depth, kind="stable")
    cuts = np.flatnonzero(np.diff(depth[order])) + 1
    return np.split(order, cuts)


class _MatchCache:
    """Per pattern, which function ids matched: a function id's name and file never change.

    A user who set a filter keeps it while exploring, so the next query with it
    looks each function up instead of running RE2 on it again. At most
    :data:`MATCH_CACHE_PATTERNS` patterns of at most :data:`MATCH_CACHE_FUNCTIONS`
    functions each are kept, the least recently used going first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_pattern: OrderedDict[str, dict[int, bool]] = OrderedDict()

    def get(self, pattern: str) -> dict[int, bool]:
        with self._lock:
            found = self._by_pattern.pop(pattern, None)
            if found is None or len(found) > MATCH_CACHE_FUNCTIONS:
                found = {}
            self._by_pattern[pattern] = found
            while len(self._by_pattern) > MATCH_CACHE_PATTERNS:
                self._by_pattern.popitem(last=False)
            return found


MATCH_CACHE_PATTERNS = 32
MATCH_CACHE_FUNCTIONS = 200_000
# One cache per table of frame ids, gone with it: ids of two stores (or of functions and line frames) never mix.
_CACHES: weakref.WeakKeyDictionary[object, _MatchCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _known(owner: object | None, pattern: str) -> dict[int, bool]:
    if owner is None:
        return {}
    with _CACHES_LOCK:
        cache = _CACHES.get(owner)
        if cache is None:
            cache = _CACHES[owner] = _MatchCache()
    return cache.get(pattern)


def _matches(tree: CallTree, regex: Regex, frames: Mapping[int, tuple[str, str]], owner: object | None) -> BoolArray:
    """Per node: does its frame's function name or file name contain a match (RE2 once per distinct text)."""
    if len(tree) == 0:
        return np.zeros(0, dtype=bool)
    present = np.zeros(int(tree.function.max()) + 1, dtype=bool)  # a mark per id: linear, no sort
    present[tree.function] = True
    functions = np.flatnonzero(present)
    known = _known(owner, regex.pattern)
    texts: dict[str, bool] = {}

    def found(text: str) -> bool:
        hit = texts.get(text)
        if hit is None:
            hit = texts[text] = bool(text) and regex.search(text)
        return hit

    hits: list[bool] = []
    for function in functions.tolist():
        hit = known.get(function)
        if hit is None:
            name, filename = frames.get(function, ("", ""))
            hit = known[function] = found(name) or found(filename)
        hits.append(hit)
    by_id = np.zeros(present.shape[0], dtype=bool)
    by_id[functions] = hits
    result: BoolArray = by_id[tree.function]
    return result


def _on_path(levels: list[IntArray], parent: IntArray, match: BoolArray) -> BoolArray:
    """Per node: does the path from the root down to it hold a matching frame."""
    on_path = match.copy()
    for level in levels[1:]:
        on_path[level] |= on_path[parent[level]]
    return on_path


def _reintern(
    levels: list[IntArray], parent: IntArray, function: IntArray, kept: BoolArray
) -> tuple[IntArray, IntArray, IntArray, list[IntArray]]:
    """The tree of kept frames: per original node its new node (-1: no kept frame on its path),
    the new nodes' parents and functions (parents before children), and the new nodes per depth.

    A kept node's new parent is the new node of its nearest kept ancestor; nodes
    that end up with the same (new parent, function) are one node. They are
    interned by their depth in the new tree, so a new parent always exists first.
    """
    n = parent.shape[0]
    at_or_above = np.full(n, -1, dtype=np.int64)  # nearest kept node at or above, -1: none
    new_depth = np.zeros(n, dtype=np.int64)  # kept nodes on the path, itself included
    for index, level in enumerate(levels):
        own = np.where(kept[level], level, -1)
        if index == 0:
            at_or_above[level] = own
            new_depth[level] = kept[level]
            continue
        above = parent[level]
        at_or_above[level] = np.where(kept[level], level, at_or_above[above])
        new_depth[level] = new_depth[above] + kept[level]
    kept_parent = np.where(parent >= 0, at_or_above[np.maximum(parent, 0)], -1)  # nearest kept strict ancestor
    new_of = np.full(n, -1, dtype=np.int64)
    parents: list[IntArray] = []
    functions: list[IntArray] = []
    count = 0
    new_levels: list[IntArray] = []
    width = int(function.max()) + 1 if n else 1
    candidates = np.flatnonzero(kept)
    if candidates.size:
        order = candidates[np.argsort(new_depth[candidates], kind="stable")]
        cuts = np.flatnonzero(np.diff(new_depth[order])) + 1
        for level in np.split(order, cuts):
            above = kept_parent[level]
            new_above = np.where(above >= 0, new_of[np.maximum(above, 0)], -1)
            keys = (new_above + 1) * width + function[level]
            first, inverse = group_keys(keys)
            new_of[level] = count + inverse
            parents.append(new_above[first])
            functions.append(function[level][first])
            new_levels.append(np.arange(count, count + first.shape[0], dtype=np.int64))
            count += first.shape[0]
    unkept = np.flatnonzero(~kept)
    source = at_or_above[unkept]
    new_of[unkept] = np.where(source >= 0, new_of[np.maximum(source, 0)], -1)
    empty = np.zeros(0, dtype=np.int64)
    return (
        new_of,
        np.concatenate(parents) if parents else empty,
        np.concatenate(functions) if functions else empty,
        new_levels,
    )


def group_keys(keys: IntArray) -> tuple[IntArray, IntArray]:
    """Equal keys as groups: one member of each group, and each key's group (0, 1, ... in key order).

    ``np.unique`` with ``return_index`` sorts stably; any member will do here, so an unstable sort is enough.
    """
    order = np.argsort(keys)
    ordered = keys[order]
    starts = np.empty(keys.shape[0], dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    group = np.cumsum(starts) - 1
    inverse = np.empty(keys.shape[0], dtype=np.int64)
    inverse[order] = group
    first: IntArray = order[starts]
    return first, inverse


def _recursive(
    tree: CallTree, new_of: IntArray, parent: IntArray, function: IntArray, kept: BoolArray, cut: bool
) -> BoolArray:
    """Whether each new node has an ancestor of its function.

    Frames are removed by function, so a kept frame's same-function ancestors are
    kept too: without a cut the flag carries over. A cut may remove them, so the
    nodes that were recursive are walked up their new ancestors.
    """
    recursive = np.zeros(parent.shape[0], dtype=bool)
    source = np.flatnonzero(kept)
    recursive[new_of[source]] = tree.recursive[source]
    if not cut:
        return recursive
    walk = np.flatnonzero(recursive)
    hit = np.zeros(walk.shape[0], dtype=bool)
    ancestor = parent[walk]
    while bool((ancestor >= 0).any()):
        live = ancestor >= 0
        safe = np.maximum(ancestor, 0)
        hit |= live & (function[safe] == function[walk])
        ancestor = np.where(live & ~hit, parent[safe], -1)
    recursive[walk] = hit
    return recursive


def _with_totals(
    parent: IntArray,
    function: IntArray,
    recursive: BoolArray,
    selfs: IntArray,
    root_self: IntArray,
    levels: list[IntArray],
) -> CallTree:
    """A tree from its self values, totals propagated level by level, deepest first."""
    totals = selfs.copy()
    for level in reversed(levels[1:]):
        np.add.at(totals, parent[level], totals[level])
    total = root_self + (totals[parent < 0].sum(axis=0) if parent.shape[0] else 0)
    return CallTree(
        node_ids=np.arange(parent.shape[0], dtype=np.int64),
        parent=parent,
        function=function,
        recursive=recursive,
        selfs=selfs,
        totals=totals,
        root_self=root_self,
        total=np.asarray(total, dtype=np.int64).reshape(-1),
    )


def _drop_empty(tree: CallTree) -> tuple[CallTree, IntArray]:
    """The tree without nodes whose values are all zero, and each old node's new index (-1: dropped).

    With no negative value, a node of zero has only such nodes below it, so no kept node loses its parent.
    """
    n = len(tree)
    if n == 0 or bool((tree.selfs < 0).any()):
        return tree, np.arange(n, dtype=np.int64)
    keep = np.any(tree.totals != 0, axis=1)
    moved = np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int64)
    if bool(keep.all()):
        return tree, moved
    parent = np.where(tree.parent[keep] >= 0, moved[np.maximum(tree.parent[keep], 0)], -1)
    return (
        CallTree(
            node_ids=np.arange(int(keep.sum()), dtype=np.int64),
            parent=parent,
            function=tree.function[keep],
            recursive=tree.recursive[keep],
            selfs=tree.selfs[keep],
            totals=tree.totals[keep],
            root_self=tree.root_self,
            total=tree.total,
        ),
        moved,
    )
