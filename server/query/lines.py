"""Line granularity: flat and cum per (function, file, line), as ``go tool pprof -top -lines`` computes them.

Each sample key's line vector gives its stack of ``(function, line)`` frames,
a leaf in a tree of them the store builds in memory (:mod:`server.store.linestacks`),
so the merged samples build a call tree of line frames exactly as
function-level queries build one of functions. pprof's
node at this granularity is (name, file, line): two frame ids naming the same
triple (functions differing only in system name) are merged like same-name
functions (:func:`server.query.byname.by_name`), and a frame recurring on one
stack counts once in cum. Profiles stored before line numbers were kept have
keys without a line vector until their stacks are ingested again; a query that
reaches one is refused, naming the time line data starts from.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from server.errors import Conflict
from server.query.aggregate import Merged
from server.query.byname import by_name, function_ids
from server.query.filters import NO_FILTERS, Filters, apply_filters
from server.query.grouping import distinct, distinct_inverse
from server.query.top import flat_and_cum
from server.query.tree import CallTree, build_tree
from server.store.linestacks import NoLineVector
from server.store.linevectors import line_data_since_ns
from server.store.repository import Store

INLINE = "inline"
PARTIAL_INLINE = "partial-inline"
_UNKNOWN = ("?", "", 0)
_PAIR_SHIFT = 32
_PAIR_MASK = (1 << _PAIR_SHIFT) - 1


@dataclass(frozen=True, slots=True)
class LineRow:
    """One (function, file, line) row; ``label`` is pprof's printable name, ``main.fib main.go:113``;
    ``inline`` pprof's mark after it: "inline", "partial-inline" or ""."""

    name: str
    file: str
    line: int
    flat: int
    cum: int
    inline: str = ""

    @property
    def label(self) -> str:
        return label(self.name, self.file, self.line)


def label(name: str, file: str, line: int) -> str:
    """pprof's ``NameComponents``: the line's place only when known, the file alone without a line."""
    if line:
        return f"{name} {file}:{line}"
    return f"{name} {file}" if file else name


class NoLineData(Conflict):
    def __init__(self, since_ns: int) -> None:
        when = datetime.fromtimestamp(since_ns / 1e9, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        super().__init__(
            f"no line data before {when}: profiles stored before then have line numbers only once their "
            "stacks are ingested again; choose a range starting later"
        )


def clean(file: str) -> str:
    """The file name as pprof shows it (Go's ``filepath.Clean``; empty stays empty)."""
    if not file:
        return file
    cleaned = posixpath.normpath(file)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def line_tree(
    store: Store, merged: Merged, filters: Filters = NO_FILTERS
) -> tuple[CallTree, dict[int, tuple[str, str, int]], dict[int, str]]:
    """The merged tree of line frames (same (name, file, line) as one node), each frame's triple, and
    pprof's inline marks (:func:`inline_marks`) by the frame id a row keeps.

    Filters match each line frame by its function's name and file, as pprof's filters match a location's
    lines before ``-lines`` groups them, so they cut the same samples and frames as at function level.
    """
    if merged.keys is None:
        raise ValueError("line granularity needs samples merged by key, not by stack node")
    try:
        leaves = store.line_leaves(merged.keys)
    except NoLineVector:
        raise NoLineData(line_data_since_ns(store.engine)) from None
    tree = build_tree(store.line_stacks, leaves, merged.values)
    pairs = store.line_frames.pairs(function_ids(tree))
    inlined = store.line_frames.inlined(pairs)
    functions = store.functions.rows({f for f, _ in pairs.values()})
    if filters.active:
        frames = {frame: (functions[f][0], functions[f][2]) for frame, (f, _) in pairs.items() if f in functions}
        tree = apply_filters(tree, filters, frames, store.line_frames)
    places = {frame: (functions[f][0], functions[f][2], line) for frame, (f, line) in pairs.items() if f in functions}
    keyed = {frame: "\0".join((name, file, str(line))) for frame, (name, file, line) in places.items()}
    return by_name(tree, keyed), places, inline_marks(tree, keyed, inlined)


def inline_marks(tree: CallTree, keyed: dict[int, str], inlined: set[int]) -> dict[int, str]:
    """pprof's mark of each row (by the smallest frame id of its key, as :func:`by_name` keeps): ``inline``
    when every edge into it is inlined, ``partial-inline`` when some are.

    pprof's graph has an edge from each row to the next on a stack (none to itself); a sample adds to an
    edge once, where the pair first appears from the root, and the edge is inlined only if every sample's
    call there was (a frame stored as ``inlined``). Samples of value zero add nothing.
    """
    if len(tree) == 0 or not inlined:
        return {}
    ids, at = distinct_inverse(tree.function)
    first: dict[str, int] = {}
    canonical = np.array([first.setdefault(keyed.get(f, "?"), f) for f in ids.tolist()], dtype=np.int64)
    key = canonical[at.reshape(-1)]
    parent = tree.parent
    above = np.where(parent >= 0, key[np.maximum(parent, 0)], -1)
    # Only a row some inlined frame belongs to can be marked (a mark needs an edge whose every counted call was
    # inlined): the edges into the other rows, most of the tree, are left out before anything is counted. An
    # edge's copy higher on the stack goes into the same row, so it is never one of those left out.
    frames = np.fromiter(inlined, dtype=np.int64)
    found = np.minimum(np.searchsorted(ids, frames), ids.shape[0] - 1)
    rows = distinct(canonical[found[ids[found] == frames]])
    marked = np.isin(key, rows)
    edge = np.flatnonzero(marked & np.any(tree.totals != 0, axis=1) & (parent >= 0) & (above != key))
    # (row above, row) packed into one int64 (frame ids are below 2**31), in the order of the pairs: a sort of
    # integers where np.unique(axis=0) sorted rows as byte strings (three quarters of this function's time).
    packed, pair = distinct_inverse((above[edge] << _PAIR_SHIFT) | key[edge])
    pairs = np.stack([packed >> _PAIR_SHIFT, packed & _PAIR_MASK], axis=1)
    pair = pair.reshape(-1)
    pair_of = np.full(len(tree), -1, dtype=np.int64)
    pair_of[edge] = pair
    again = np.zeros(edge.shape[0], dtype=bool)  # the same pair higher on the stack: that one counts
    check = np.flatnonzero(np.bincount(pair)[pair] > 1)
    up = parent[edge[check]]
    while check.shape[0]:
        again[check[pair_of[up] == pair[check]]] = True
        live = parent[up] >= 0
        check, up = check[live], parent[up[live]]
    counted = ~again
    calls = np.bincount(pair[counted], minlength=pairs.shape[0])
    inlined_calls = np.bincount(pair[counted & np.isin(tree.function[edge], list(inlined))], minlength=calls.shape[0])
    used = calls > 0
    all_inlined = used & (inlined_calls == calls)
    marks: dict[int, str] = {}
    for row, whole in zip(pairs[used, 1].tolist(), all_inlined[used].tolist(), strict=True):
        seen = marks.get(row)
        if whole:
            marks[row] = INLINE if seen in (None, INLINE) else PARTIAL_INLINE
        else:
            marks[row] = PARTIAL_INLINE if seen in (INLINE, PARTIAL_INLINE) else ""
    return {row: mark for row, mark in marks.items() if mark}


def line_rows(
    tree: CallTree,
    places: dict[int, tuple[str, str, int]],
    marks: dict[int, str] | None = None,
    limit: int | None = None,
) -> list[LineRow]:
    """Rows of every line with a value (the first ``limit``), in pprof's ``-top`` order: |flat| down, then
    printable name, then |cum|. Sorted as plain values before any row is made: a big profile has thousands of
    lines, and making and sorting the rows themselves was most of a line-level top."""
    if len(tree) == 0:
        return []
    frames, flat_matrix, cum_matrix = flat_and_cum(tree)
    present = (flat_matrix[:, 0] != 0) | (cum_matrix[:, 0] != 0)
    ids: list[int] = frames[present].tolist()
    flat: list[int] = flat_matrix[present, 0].tolist()
    cum: list[int] = cum_matrix[present, 0].tolist()
    where = [places.get(frame, _UNKNOWN) for frame in ids]
    order = sorted(range(len(ids)), key=lambda i: (-abs(flat[i]), label(*where[i]), -abs(cum[i])))
    marks = marks or {}
    return [LineRow(*where[i], flat=flat[i], cum=cum[i], inline=marks.get(ids[i], "")) for i in order[:limit]]
