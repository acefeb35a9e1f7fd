"""Read the profiles a query selects and sum their samples as arrays.

This is the hot path of every query: the store hands over each profile's
samples as numpy arrays (:meth:`Store.read_samples`), which are concatenated
and summed per sample key; nothing loops over samples in Python.

Function-level views (flame graphs, top tables, the sandwich, diffs) need only
each sample's stack leaf node, not its key: merged ``by_node``, rollups hand
over their values already summed per node (:meth:`Store.read_leaves`), so a
week of rollups is summed as node arrays without resolving every key to its
node again. Sample-label matchers and line granularity need the keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.errors import InvalidParameter
from server.pprof.kinds import is_gauge
from server.query.overflow import SumGuard
from server.query.plan import plan
from server.query.request import ProfileQuery
from server.query.selector import Selector
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.store.samples import aggregate
from server.store.series import SeriesInfo

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class Merged:
    """Summed samples of one sample type: one row per pprof sample identity (key), with its node and label set.

    Merged ``by_node``, one row per stack leaf node instead: ``keys`` and ``labelsets`` are None.
    """

    sample_type: str
    unit: str
    aggregation: str
    profiles: list[ProfileMeta]
    keys: IntArray | None
    nodes: IntArray
    labelsets: IntArray | None
    values: IntArray

    def keep(self, mask: npt.NDArray[np.bool_]) -> None:
        self.nodes, self.values = self.nodes[mask], self.values[mask]
        if self.keys is not None:
            self.keys = self.keys[mask]
        if self.labelsets is not None:
            self.labelsets = self.labelsets[mask]

    @property
    def profile_count(self) -> int:
        """Raw profiles merged (a rollup counts for the profiles it holds)."""
        return sum(p.profiles for p in self.profiles)

    @property
    def divisor(self) -> int:
        return self.profile_count if self.aggregation == "avg" and self.profiles else 1

    def total(self) -> int:
        return int(self.values.sum())


def split_selector(store: Store, query: ProfileQuery) -> tuple[list[SeriesInfo], Selector]:
    """Series matching the selector's series-label matchers, and the matchers left for sample labels.

    A matcher names a series label when any series of the kind carries that
    label; otherwise it can only mean a pprof sample label (``pprof.Do``), and
    keeps just the samples that carry it.
    """
    of_kind = [s for s in store.series.all() if s.kind == query.kind]
    series_names = {name for s in of_kind for name in s.labels}
    on_series, on_samples = query.selector.split(series_names)
    return [s for s in of_kind if on_series.matches(s.labels)], on_samples


def matching_series(store: Store, query: ProfileQuery) -> list[SeriesInfo]:
    return split_selector(store, query)[0]


def labelset_filter(store: Store, labelsets: IntArray, selector: Selector) -> npt.NDArray[np.bool_]:
    """Which rows' sample labels satisfy ``selector`` (rows without labels have every label empty)."""
    distinct = np.unique(labelsets)
    known = store.label_sets(distinct.tolist())
    allowed = [lid for lid in distinct.tolist() if selector.matches(dict(known.get(lid, ((), ()))[0]))]
    return np.isin(labelsets, np.array(allowed, dtype=np.int64))


def select_profiles(store: Store, query: ProfileQuery, limit: int) -> list[ProfileMeta]:
    series = matching_series(store, query)
    return profiles_of(store, series, query, limit)


def profiles_of(store: Store, series: list[SeriesInfo], query: ProfileQuery, limit: int) -> list[ProfileMeta]:
    """Raw profiles and rollups that together hold exactly the query's profiles."""
    return plan(store, [s.id for s in series], query.start_ns, query.end_ns + 1, limit, rollups=query.rollups)


def resolve_sample(profiles: list[ProfileMeta], sample: str | None) -> tuple[str, str]:
    """The sample type name and unit: the requested one, else the newest profile's default."""
    if not profiles:
        return (sample or "", "")
    reference = profiles[-1]
    index = reference.default_sample_index() if sample is None else reference.sample_index(sample)
    if index is None:
        names = ", ".join(entry.split("/", 1)[0] for entry in reference.sample_types)
        raise InvalidParameter("sample", f"unknown sample type {sample!r}; this profile type has {names}")
    type_name, _, unit = reference.sample_types[index].partition("/")
    return type_name, unit


def merge_profiles(store: Store, query: ProfileQuery, limit: int, by_node: bool = False) -> Merged:
    """The query's profiles merged; ``by_node`` when the caller needs only stack nodes (not keys or labels)."""
    series, sample_selector = split_selector(store, query)
    profiles = profiles_of(store, series, query, limit)
    sample_type, unit = resolve_sample(profiles, query.sample)
    aggregation = query.aggregation or ("avg" if is_gauge(query.kind, sample_type) else "sum")
    # Sample-label matchers need each row's label set, which per-node sums no longer have.
    by_node = by_node and not sample_selector.matchers
    merged = merge_selected(store, profiles, sample_type, unit, aggregation, by_node)
    if sample_selector.matchers and merged.nodes.size:
        assert merged.labelsets is not None
        merged.keep(labelset_filter(store, merged.labelsets, sample_selector))
    return merged


def sample_columns(
    store: Store, parts: list[ProfileMeta], sample_type: str
) -> Iterator[tuple[ProfileMeta, IntArray, IntArray]]:
    """Each part's sample keys and its values of ``sample_type`` (parts without that type are skipped)."""
    having = [part for part in parts if part.sample_index(sample_type) is not None]
    for part, arrays in store.read_samples(having):
        column = part.sample_index(sample_type)
        assert column is not None
        yield part, arrays.keys, arrays.values[:, column]


def merge_selected(
    store: Store, profiles: list[ProfileMeta], sample_type: str, unit: str, aggregation: str, by_node: bool = False
) -> Merged:
    """The profiles' samples of one type summed per sample key (per stack node with ``by_node``);
    a 422 if any sum could pass 64 bits."""
    if by_node:
        return _merge_by_node(store, profiles, sample_type, unit, aggregation)
    keys: list[IntArray] = []
    values: list[IntArray] = []
    used: list[ProfileMeta] = []
    guard = SumGuard(sample_type)
    for meta, part_keys, part_values in sample_columns(store, profiles, sample_type):
        guard.add(part_values)
        keys.append(part_keys)
        values.append(part_values)
        used.append(meta)
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return Merged(sample_type, unit, aggregation, used, empty, empty, empty, empty)
    summed = aggregate(np.concatenate(keys), np.concatenate(values).reshape(-1, 1))
    nodes, labelsets = store.sample_identities(summed.keys)
    return Merged(sample_type, unit, aggregation, used, summed.keys, nodes, labelsets, summed.values[:, 0])


def _merge_by_node(store: Store, profiles: list[ProfileMeta], sample_type: str, unit: str, aggregation: str) -> Merged:
    """Rows per stack leaf node: rollups' per-node sums as they are, other parts' keys resolved to nodes."""
    keys: list[IntArray] = []
    key_values: list[IntArray] = []
    nodes: list[IntArray] = []
    node_values: list[IntArray] = []
    used: list[ProfileMeta] = []
    guard = SumGuard(sample_type)
    having = [part for part in profiles if part.sample_index(sample_type) is not None]
    for part, arrays, per_node in store.read_leaves(having):
        column = part.sample_index(sample_type)
        assert column is not None
        part_values = arrays.values[:, column]
        guard.add(part_values)
        (nodes if per_node else keys).append(arrays.keys)
        (node_values if per_node else key_values).append(part_values)
        used.append(part)
    if keys:
        summed = aggregate(np.concatenate(keys), np.concatenate(key_values).reshape(-1, 1))
        nodes.append(store.sample_identities(summed.keys)[0])
        node_values.append(summed.values[:, 0])
    if not nodes:
        empty = np.zeros(0, dtype=np.int64)
        return Merged(sample_type, unit, aggregation, used, None, empty, None, empty)
    summed = aggregate(np.concatenate(nodes), np.concatenate(node_values).reshape(-1, 1))
    return Merged(sample_type, unit, aggregation, used, None, summed.keys, None, summed.values[:, 0])
