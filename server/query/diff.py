"""Comparisons: two time ranges, or two selectors, side by side over one call tree.

Values are the comparison minus the base, exactly as ``go tool pprof
-diff_base=BASE NEW`` computes them (negate the base, merge). With
``normalize``, the comparison is first scaled so its total equals the base's,
each merged sample rounded half away from zero, as ``-normalize`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.pprof.merge import round_half_away
from server.query.aggregate import Merged, merge_profiles
from server.query.byname import by_name, function_ids
from server.query.filters import NO_FILTERS, Filters, apply_filters
from server.query.flamegraph import FlameGraph, flamegraph
from server.query.overflow import BOUND, overflow
from server.query.request import ProfileQuery
from server.query.top import flat_and_cum
from server.query.tree import CallTree, build_tree
from server.settings import Settings
from server.store.repository import Store


@dataclass(slots=True)
class Comparison:
    base: Merged
    new: Merged
    tree: CallTree
    scale: float
    names: dict[int, str]  # function id -> name, for every function of the tree: both sides matched by it
    totals: tuple[int, int]  # (base, comparison) before filters: pprof's percentages divide by them


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """The two sides in numbers: what each merged, their totals, and whether the comparison was normalised."""

    sample_type: str
    unit: str
    aggregation: str
    normalized: bool
    scale: float
    base_profiles: int
    profiles: int
    base_total: float
    total: float

    @property
    def total_change(self) -> float:
        return self.total - self.base_total


@dataclass(slots=True)
class DiffEntry:
    """One function on both sides; the changes are the comparison minus the base."""

    name: str
    base_flat: float
    flat: float
    base_cum: float
    cum: float
    flat_change: float
    cum_change: float


@dataclass(frozen=True, slots=True)
class DiffTable:
    summary: DiffSummary
    rows: list[DiffEntry]


@dataclass(frozen=True, slots=True)
class DiffFlameGraph:
    summary: DiffSummary
    graph: FlameGraph


def compare(
    store: Store,
    settings: Settings,
    new: ProfileQuery,
    base: ProfileQuery,
    normalize: bool,
    filters: Filters = NO_FILTERS,
) -> Comparison:
    """Both sides over one tree; ``filters`` apply after normalising, as pprof applies them to the merged diff."""
    # Normalising rounds each pprof sample (key) on its own, as pprof's -normalize does: that side keeps its keys.
    merged_new = merge_profiles(store, new, settings.max_query_profiles, by_node=not normalize)
    merged_base = merge_profiles(store, _same_sample(base, merged_new), settings.max_query_profiles, by_node=True)
    new_values = merged_new.values
    ratio = 1.0
    if normalize and merged_new.total() != 0:
        ratio = merged_base.total() / merged_new.total()
        scaled = [round_half_away(v * ratio) for v in new_values.tolist()]
        if sum(abs(v) for v in scaled) > BOUND:  # scaled up by a base whose values cancel out: still 64 bits?
            raise overflow(merged_new.sample_type)
        new_values = np.array(scaled, dtype=np.int64)
    nodes = np.concatenate([merged_base.nodes, merged_new.nodes])
    matrix = np.zeros((nodes.shape[0], 2), dtype=np.int64)
    matrix[: merged_base.nodes.shape[0], 0] = merged_base.values
    matrix[merged_base.nodes.shape[0] :, 1] = new_values
    tree = build_tree(store.stacks, nodes, matrix)
    totals = (int(tree.total[0]), int(tree.total[1]))
    if filters.active:
        frames = store.functions.frames(function_ids(tree))
        tree = apply_filters(tree, filters, frames, store.functions)
    # Functions are matched between the sides in one tree; names are looked up once, for both,
    # and same-name functions are one node on both sides, as at pprof's function granularity.
    names = store.functions.names(function_ids(tree))
    return Comparison(merged_base, merged_new, by_name(tree, names), ratio, names, totals)


def _same_sample(base: ProfileQuery, new: Merged) -> ProfileQuery:
    """The base is read with the comparison's sample type and aggregation, so the sides are comparable."""
    return ProfileQuery(
        base.kind, base.selector, base.start_ns, base.end_ns, base.sample or new.sample_type or None, new.aggregation
    )


def _number(value: int, divisor: int) -> float:
    return value if divisor == 1 else value / divisor


def diff_top(comparison: Comparison, limit: int | None) -> DiffTable:
    tree, names = comparison.tree, comparison.names
    rows: list[DiffEntry] = []
    if len(tree):
        functions, flat, cum = flat_and_cum(tree)
        base_div, new_div = comparison.base.divisor, comparison.new.divisor
        for index, function in enumerate(functions.tolist()):
            base_flat, new_flat = int(flat[index, 0]), int(flat[index, 1])
            base_cum, new_cum = int(cum[index, 0]), int(cum[index, 1])
            if not (base_flat or new_flat or base_cum or new_cum):
                continue
            rows.append(
                DiffEntry(
                    name=names.get(function, "?"),
                    base_flat=_number(base_flat, base_div),
                    flat=_number(new_flat, new_div),
                    base_cum=_number(base_cum, base_div),
                    cum=_number(new_cum, new_div),
                    flat_change=_number(new_flat, new_div) - _number(base_flat, base_div),
                    cum_change=_number(new_cum, new_div) - _number(base_cum, base_div),
                )
            )
    rows.sort(key=lambda r: (-abs(r.flat_change), -abs(r.cum_change), r.name))
    if limit is not None:
        rows = rows[:limit]
    return DiffTable(_summary(comparison), rows)


def diff_flamegraph(
    comparison: Comparison, max_nodes: int, per_side: bool = False, drop_empty: bool = False
) -> DiffFlameGraph:
    """Both sides over one tree; ``per_side`` and ``drop_empty`` as :func:`flamegraph` takes them."""
    graph = flamegraph(comparison.tree, comparison.names, max_nodes, per_side=per_side, drop_empty=drop_empty)
    return DiffFlameGraph(_summary(comparison), graph)


def _summary(comparison: Comparison) -> DiffSummary:
    base, new = comparison.base, comparison.new
    return DiffSummary(
        sample_type=new.sample_type or base.sample_type,
        unit=new.unit or base.unit,
        aggregation=new.aggregation,
        normalized=comparison.scale != 1.0,
        scale=comparison.scale,
        base_profiles=base.profile_count,
        profiles=new.profile_count,
        base_total=_number(comparison.totals[0], base.divisor),
        total=_number(comparison.totals[1], new.divisor),
    )
