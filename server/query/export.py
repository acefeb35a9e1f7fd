"""A merged query result as a pprof profile that ``go tool pprof`` opens.

Each stack node becomes one location with a single line for its function
(Stackyard keeps functions, not addresses or line numbers), and each
(leaf node, labelset) row becomes one sample carrying every sample type, so
``-sample_index`` works on the export as on the originals.
"""

from __future__ import annotations

import numpy as np

from server.pprof.checked import clamp
from server.pprof.merge import round_half_away
from server.pprof.model import Function, Line, Location, Profile, Sample, ValueType
from server.query.aggregate import IntArray, labelset_filter
from server.query.byname import function_ids
from server.query.filters import NO_FILTERS, Filters, filter_tree
from server.query.overflow import SumGuard
from server.query.selector import Selector
from server.query.tree import build_tree
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.store.samples import aggregate, group_pairs
from server.store.stacks import ROOT


def export_profile(
    store: Store,
    profiles: list[ProfileMeta],
    divide_by: int = 1,
    sample_selector: Selector | None = None,
    filters: Filters = NO_FILTERS,
) -> Profile:
    """Merge every sample type of ``profiles``; ``divide_by`` > 1 averages (rounding half away from zero).

    ``sample_selector`` keeps only samples whose pprof labels match it; ``filters`` drop samples and
    frames as pprof's -focus, -hide... would, so the file opens with the filtered stacks.
    """
    sample_types: list[str] = []
    for meta in profiles:
        for entry in meta.sample_types:
            if entry not in sample_types:
                sample_types.append(entry)
    keys: list[IntArray] = []
    values: list[IntArray] = []
    guards = {entry: SumGuard(entry.split("/", 1)[0]) for entry in sample_types}
    for meta, arrays in store.read_samples(profiles):
        widened = np.zeros((len(arrays), len(sample_types)), dtype=np.int64)
        for column, entry in enumerate(meta.sample_types):
            guards[entry].add(arrays.values[:, column])
            widened[:, sample_types.index(entry)] = arrays.values[:, column]
        keys.append(arrays.keys)
        values.append(widened)
    value_types = [ValueType(*entry.split("/", 1)) for entry in sample_types]
    reference = profiles[-1] if profiles else None
    result = Profile(sample_types=value_types)
    if reference is not None:
        if reference.period_type:
            result.period_type = ValueType(*reference.period_type.split("/", 1))
        result.period = max(p.period for p in profiles)
        result.time_nanos = min(p.time_ns for p in profiles)
        result.duration_nanos = clamp(sum(p.duration_ns for p in profiles))  # pprof's field is 64 bits
        result.default_sample_type = reference.default_sample_type
    if not keys:
        return result
    summed = aggregate(np.concatenate(keys), np.concatenate(values))
    nodes, labelsets = store.sample_identities(summed.keys)
    rows = summed.values
    if sample_selector is not None and sample_selector.matchers:
        keep = labelset_filter(store, labelsets, sample_selector)
        nodes, labelsets, rows = nodes[keep], labelsets[keep], rows[keep]
    result.samples = _samples(store, *group_pairs(nodes, labelsets, rows), divide_by, filters)
    result.locations = list({id(loc): loc for s in result.samples for loc in s.locations}.values())
    return result


def _samples(
    store: Store, nodes: IntArray, labelset_ids: IntArray, rows: IntArray, divide_by: int, filters: Filters
) -> list[Sample]:
    """One sample per (node, label set): function granularity, as everything else Stackyard shows."""
    store.stacks.ensure(nodes)
    paths = _filtered_paths(store, nodes, rows, filters) if filters.active else _paths(store, nodes)
    labelsets = store.label_sets(set(labelset_ids.tolist()))
    samples: list[Sample] = []
    for node, labelset, summed in zip(nodes.tolist(), labelset_ids.tolist(), rows.tolist(), strict=True):
        row = summed if divide_by == 1 else [round_half_away(v / divide_by) for v in summed]
        path = paths.get(node)
        if not any(row) or path is None:
            continue
        labels, num_labels = labelsets.get(labelset, ((), ()))
        samples.append(Sample(path, tuple(row), labels, num_labels))
    return samples


def _paths(store: Store, nodes: IntArray) -> dict[int, tuple[Location, ...]]:
    """Each stored stack as locations, leaf first."""
    closure = store.stacks.ancestors_closure(nodes)
    function_rows = store.functions.rows(store.stacks.function[closure].tolist())
    functions = {
        fid: Function(name, system_name, filename, start_line)
        for fid, (name, system_name, filename, start_line) in function_rows.items()
    }
    locations: dict[int, Location] = {}
    paths: dict[int, tuple[Location, ...]] = {ROOT: ()}
    parent = store.stacks.parent
    function = store.stacks.function
    for node in closure.tolist():  # sorted ids: a parent always precedes its children
        loc = Location((Line(functions[int(function[node])]),), 0, len(locations) + 1)
        locations[node] = loc
        paths[node] = (loc, *paths[int(parent[node])])
    return paths


def _filtered_paths(
    store: Store, nodes: IntArray, rows: IntArray, filters: Filters
) -> dict[int, tuple[Location, ...] | None]:
    """Each stored stack as the locations ``filters`` leave of it, leaf first; None when its samples go."""
    tree = build_tree(store.stacks, nodes, np.abs(rows), node_ids=True)
    filtered = filter_tree(tree, filters, store.functions.frames(function_ids(tree)), store.functions)
    kept = filtered.tree
    function_rows = store.functions.rows(kept.function.tolist())
    functions = {
        fid: Function(name, system_name, filename, start_line)
        for fid, (name, system_name, filename, start_line) in function_rows.items()
    }
    new_paths: list[tuple[Location, ...]] = []
    for index, (above, fid) in enumerate(zip(kept.parent.tolist(), kept.function.tolist(), strict=True)):
        loc = Location((Line(functions[fid]),), 0, index + 1)  # parents come before children
        new_paths.append((loc, *(new_paths[above] if above >= 0 else ())))
    paths: dict[int, tuple[Location, ...] | None] = {ROOT: () if filtered.keeps_empty else None}
    assert tree.node_ids is not None  # asked for above
    for node, new in zip(tree.node_ids.tolist(), filtered.new_of.tolist(), strict=True):
        paths[node] = new_paths[new] if new >= 0 else None
    return paths
