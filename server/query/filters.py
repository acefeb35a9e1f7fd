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
time proportional to the tree and not to the samples behind it: array
operations over the nodes, and the passes that follow paths from the root (a
match on the path, the tree of the kept frames) in C (``_filters.c``), one pass
each since parents come before children.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.errors import InvalidParameter
from server.query import _filters
from server.query.regex import Regex, RegexError, compile_regex
from server.query.tree import CallTree, Indices, as_indices, sum_totals

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: (name, file name) per function id, or what gives them for the ids asked: only ids no cached match
#: covers are asked, so a repeated filter reads no name at all.
Frames = Mapping[int, tuple[str, str]] | Callable[[list[int]], Mapping[int, tuple[str, str]]]

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
    frames: Frames,
    owner: object | None = None,
) -> CallTree:
    """The tree of the samples and frames ``filters`` keep; ``frames`` gives function ids' (name, file).

    ``owner`` is the table whose ids the tree's frames are (a store's functions, or its line frames):
    matches are remembered per owner, never across two numberings.
    """
    if not filters.active:
        return tree
    return filter_tree(tree, filters, frames, owner).tree


def filter_tree(
    tree: CallTree,
    filters: Filters,
    frames: Frames,
    owner: object | None = None,
) -> Filtered:
    """:func:`apply_filters`, keeping the map from original nodes to filtered ones (exports need it)."""
    n = len(tree)
    parent = tree.parent
    cuts_samples = filters.focus is not None or filters.ignore is not None
    kept = np.ones(n, dtype=bool)
    if filters.hide is not None:
        kept &= ~_matches(tree, filters.hide, frames, owner)
    if filters.show is not None:
        kept &= _matches(tree, filters.show, frames, owner)
    # focus, ignore and show_from each ask whether a path holds a match: one pass down the tree for all.
    # show_from looks for its root-most match among the frames still shown.
    asked: dict[str, BoolArray] = {}
    if filters.focus is not None:
        asked["focus"] = _matches(tree, filters.focus, frames, owner)
    if filters.ignore is not None:
        asked["ignore"] = _matches(tree, filters.ignore, frames, owner)
    if filters.show_from is not None:
        asked["show_from"] = _matches(tree, filters.show_from, frames, owner) & kept
    paths = dict(zip(asked, _on_paths(parent, list(asked.values())), strict=True))
    keep_samples = np.ones(n, dtype=bool)
    keep_root = True  # samples with an empty stack
    if filters.focus is not None:
        keep_samples &= paths["focus"]
        keep_root = False
    if filters.ignore is not None:
        keep_samples &= ~paths["ignore"]
    up: IntArray | None = None  # per node, the nearest kept node at or above it (-1: none), when known early
    if filters.show_from is not None:
        # The frames above the root-most match go, stacks without one go too. A node at or below a match
        # (on_path) is at or below the root-most one.
        on_path = paths["show_from"]
        if filters.hide is not None or filters.show is not None:
            # Going up from a node, on_path holds until it stops for good: the nearest frame hide and show
            # keep is the nearest kept one if it is on the path, and no frame above it is. Pointer jumping
            # then runs only over the frames hide and show remove, never over the long runs above the cut.
            shown = _nearest_kept(parent, kept)
            up = np.where(on_path[shown] & (shown >= 0), shown, -1)
        kept &= on_path
        if up is None:
            up = np.where(kept, np.arange(n, dtype=np.int64), -1)  # on_path holds down to every leaf
    if filters.hide is not None or filters.show is not None or filters.show_from is not None:
        keep_root = False  # an empty stack has no frame to show; pprof drops it too
    columns = tree.selfs.shape[1]
    root_self = tree.root_self.copy() if keep_root else np.zeros(columns, dtype=np.int64)
    if cuts_samples:
        selfs = np.where(keep_samples[:, None], tree.selfs, 0)
        totals = _propagate(parent, selfs)
        if not bool((selfs < 0).any()):
            # A node left with no sample has only such nodes below it: dropping it now lifts nothing,
            # and spares merging what would be dropped as empty at the end.
            # ``up`` may now point at such a node (only from one holding no sample either): it has no new
            # node, so what points at it lands nowhere, as an empty node does.
            kept &= np.any(totals != 0, axis=1)
    else:
        selfs, totals = tree.selfs, tree.totals
    if filters.hide is None and filters.show is None and filters.show_from is None:
        # Only samples go: the same nodes, their values recomputed.
        result = _tree_of(parent, tree.function, tree.recursive, selfs, totals, root_self)
        result, moved = _drop_empty(result)
        return Filtered(result, np.where(keep_samples, moved, -1), keep_root)
    merged = _keep(parent, tree.function, kept, up)
    landed = keep_samples & (merged.new_of >= 0)
    recursive = _recursive(tree, merged, kept, filters.show_from is not None)
    result = _tree_of(*merged.values(tree.function, recursive, selfs, totals, landed, kept), root_self)
    result, moved = _drop_empty(result)
    moved = np.append(moved, -1)  # position -1 (no node) stays -1
    new_of = np.where(landed, moved[merged.new_of], -1)
    return Filtered(result, new_of, keep_root)


def keep_frames(tree: CallTree, kept: BoolArray) -> tuple[CallTree, IntArray]:
    """``tree`` without the frames not ``kept`` (as ``hide`` removes them); samples with no frame left go.

    Also each original node's new node (-1: none). Frames are removed per node here, not per function,
    so ``recursive`` is left to the caller (it is all false).
    """
    merged = _keep(tree.parent, tree.function, kept)
    landed = merged.new_of >= 0
    recursive = np.zeros(merged.parent.shape[0], dtype=bool)
    values = merged.values(tree.function, recursive, tree.selfs, tree.totals, landed, kept)
    return _tree_of(*values, np.zeros_like(tree.root_self)), merged.new_of


class _MatchCache:
    """Per pattern, which function ids matched: a function id's name and file never change.

    A user who set a filter keeps it while exploring, so the next query with it
    looks its functions up in one array read instead of running RE2 on each
    again. An array per pattern holds a byte per function id (-1: not looked at
    yet); at most :data:`MATCH_CACHE_PATTERNS` of them are kept, the least
    recently used going first, and ids past :data:`MATCH_CACHE_IDS` are not
    cached (the array would outgrow what it saves).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_pattern: OrderedDict[str, npt.NDArray[np.int8]] = OrderedDict()

    def get(self, pattern: str, size: int) -> npt.NDArray[np.int8]:
        """The pattern's array, at least ``size`` long; a fresh, unshared one when ``size`` is too big to keep.

        Queries running at once may fill the same array: they write the same answers.
        """
        if size > MATCH_CACHE_IDS:
            return np.full(size, -1, dtype=np.int8)
        with self._lock:
            found = self._by_pattern.pop(pattern, None)
            if found is None or found.shape[0] < size:
                grown = np.full(size, -1, dtype=np.int8)
                if found is not None:
                    grown[: found.shape[0]] = found
                found = grown
            self._by_pattern[pattern] = found
            while len(self._by_pattern) > MATCH_CACHE_PATTERNS:
                self._by_pattern.popitem(last=False)
            return found


MATCH_CACHE_PATTERNS = 32
MATCH_CACHE_IDS = 1 << 22
# One cache per table of frame ids, gone with it: ids of two stores (or of functions and line frames) never mix.
_CACHES: weakref.WeakKeyDictionary[object, _MatchCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _known(owner: object | None, pattern: str, size: int) -> npt.NDArray[np.int8]:
    """The owner's match array for ``pattern`` (-1: not looked at yet); a fresh one without an owner."""
    if owner is None:
        return np.full(size, -1, dtype=np.int8)
    with _CACHES_LOCK:
        cache = _CACHES.get(owner)
        if cache is None:
            cache = _CACHES[owner] = _MatchCache()
    return cache.get(pattern, size)


def _matches(tree: CallTree, regex: Regex, frames: Frames, owner: object | None) -> BoolArray:
    """Per node: does its frame's function name or file name contain a match (RE2 once per distinct text)."""
    if len(tree) == 0:
        return np.zeros(0, dtype=bool)
    size = int(tree.function.max()) + 1
    known = _known(owner, regex.pattern, size)
    present = np.zeros(size, dtype=bool)  # a mark per id: linear, no sort
    present[tree.function] = True
    present &= known[:size] < 0
    unknown = np.flatnonzero(present)
    if unknown.shape[0]:
        texts: dict[str, bool] = {}

        def found(text: str) -> bool:
            hit = texts.get(text)
            if hit is None:
                hit = texts[text] = bool(text) and regex.search(text)
            return hit

        asked = unknown.tolist()
        found_frames = frames(asked) if callable(frames) else frames
        rows = (found_frames.get(function, ("", "")) for function in asked)
        known[unknown] = [found(name) or found(filename) for name, filename in rows]
    result: BoolArray = known[tree.function] == 1
    return result


def _on_paths(parent: Indices, matches: list[BoolArray]) -> list[BoolArray]:
    """Per pattern (at most 8), per node: does the path from the root down to it hold a matching frame.

    The patterns go down the tree together, a bit each in one byte per node, in one C pass.
    """
    if not matches:
        return []
    bits = np.zeros(parent.shape[0], dtype=np.uint8)
    for bit, match in enumerate(matches):
        bits |= match.view(np.uint8) << np.uint8(bit)
    _filters.on_paths(as_indices(parent), bits)
    return [(bits & np.uint8(1 << bit)) != 0 for bit in range(len(matches))]


@dataclass(frozen=True, slots=True)
class _Kept:
    """The tree of the kept frames, as a map from the original nodes.

    ``new_of[i]``: the new node holding original node ``i`` (its nearest kept node at or above), -1 when
    its path keeps no frame; ``nodes``: per new node, the lowest original node it holds; ``parent``: the
    new nodes' parents (-1: the root). New nodes are in the order of ``nodes``, so parents come first.
    """

    new_of: IntArray
    nodes: IntArray
    parent: IntArray

    def values(
        self,
        function: Indices,
        recursive: BoolArray,
        selfs: IntArray,
        totals: IntArray,
        landed: BoolArray,
        kept: BoolArray,
    ) -> tuple[IntArray, Indices, BoolArray, IntArray, IntArray]:
        """The new tree's parent, function, recursive, selfs and totals, from the original nodes' values.

        A new node's total is the sum of its original nodes' totals: they have the same kept path, so
        none lies below another and no sample is counted twice. No level-by-level propagation is needed.
        """
        nodes = self.nodes
        # Each new node starts from its lowest original node's values; only the others are added (np.add.at
        # is slow per item, and most nodes are their new node's lowest).
        new_selfs = np.where(landed[nodes][:, None], selfs[nodes], 0)
        new_totals = totals[nodes].copy()
        others = np.ones(landed.shape[0], dtype=bool)
        others[nodes] = False
        more = np.flatnonzero(others & landed)
        np.add.at(new_selfs, self.new_of[more], selfs[more])
        more = np.flatnonzero(others & kept)
        np.add.at(new_totals, self.new_of[more], totals[more])
        return self.parent, function[nodes], recursive, new_selfs, new_totals


def _keep(parent: Indices, function: Indices, kept: BoolArray, up: IntArray | None = None) -> _Kept:
    """The tree of kept frames: each kept node hangs off its nearest kept ancestor, and kept nodes
    that end up with the same path of functions are one node. ``up``: each node's nearest kept node at or
    above it, when the caller knows it (a node it names that is no longer kept holds no new node).

    One pass in C (``_filters.c``): nodes come parents first, so a kept node's path is (its new parent, its
    function) once its nearest kept ancestor has its new node. It relies on what every call tree holds: no
    two children of one node share a function (only where paths meet is a path looked up).
    """
    new_of, nodes, new_parent = _filters.keep(
        as_indices(parent),
        as_indices(function),
        np.ascontiguousarray(kept, dtype=np.bool_),
        None if up is None else np.ascontiguousarray(up, dtype=np.int64),
    )
    return _Kept(
        np.frombuffer(new_of, dtype=np.int64),
        np.frombuffer(nodes, dtype=np.int64),
        np.frombuffer(new_parent, dtype=np.int64),
    )


def _nearest_kept(parent: Indices, kept: BoolArray) -> IntArray:
    """Per node, the nearest kept node at or above it (itself when kept), -1 when there is none.

    Pointer jumping over the runs of removed frames only: log2 of the longest run passes.
    """
    n = parent.shape[0]
    up = np.where(kept, np.arange(n, dtype=np.int64), parent)
    todo = np.flatnonzero(~kept & (parent >= 0))
    todo = todo[~kept[up[todo]]]
    while todo.shape[0]:
        up[todo] = up[up[todo]]  # the right side is read whole before the write: every pointer doubles
        target = up[todo]
        todo = todo[(target >= 0) & ~kept[np.maximum(target, 0)]]
    return up


def _recursive(tree: CallTree, merged: _Kept, kept: BoolArray, cut: bool) -> BoolArray:
    """Whether each new node has an ancestor of its function.

    Frames are removed by function, so a kept frame's same-function ancestors are
    kept too: without a cut the flag carries over. A cut removes the frames above
    the root-most match, and the frames kept on a path are the ones below it: a
    recursive node stays so when its nearest same-function ancestor in the
    original tree is kept. That ancestor is found walking the original parents
    (in C, ``_filters.kept_recursion``: numpy's rounds of a step each were 8 ms
    of a high-churn day's show_from). Nodes merged into one new node share their
    kept path, so any of them answers.
    """
    recursive = np.zeros(merged.parent.shape[0], dtype=bool)
    source = np.flatnonzero(kept & tree.recursive)
    if not cut:
        recursive[merged.new_of[source]] = True
        return recursive
    stays = _filters.kept_recursion(
        as_indices(tree.parent),
        as_indices(tree.function),
        np.ascontiguousarray(kept, dtype=np.bool_),
        source,
    )
    recursive[merged.new_of[source[np.frombuffer(stays, dtype=np.bool_)]]] = True
    return recursive


def _propagate(parent: Indices, selfs: IntArray) -> IntArray:
    """Totals from self values: a parent's index is below its children's, so one pass from the last node."""
    totals = selfs.copy()
    sum_totals(totals, parent)
    return totals


def _tree_of(
    parent: Indices,
    function: Indices,
    recursive: BoolArray,
    selfs: IntArray,
    totals: IntArray,
    root_self: IntArray,
) -> CallTree:
    """A tree of nodes numbered 0, 1, ...; its total is its roots' plus what empty stacks hold."""
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
