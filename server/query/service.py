"""The query operations the API and CLI expose, each returning plain JSON-ready data."""

from __future__ import annotations

from typing import Any

from server.errors import NotFound
from server.pprof import encode
from server.query.aggregate import (
    Merged,
    matching_series,
    merge_profiles,
    merge_selected,
    profiles_of,
    resolve_sample,
    split_selector,
)
from server.query.export import export_profile
from server.query.flamegraph import flamegraph
from server.query.request import ProfileQuery
from server.query.selector import Selector
from server.query.top import sort_rows, top_rows
from server.query.tree import CallTree, build_tree
from server.settings import Settings
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.syntax.times import format_time


def _tree(store: Store, merged: Merged) -> CallTree:
    return build_tree(store.stacks, merged.nodes, merged.values)


def _number(value: int, divisor: int) -> int | float:
    return value if divisor == 1 else value / divisor


def top(store: Store, settings: Settings, query: ProfileQuery, limit: int | None = None) -> dict[str, Any]:
    merged = merge_profiles(store, query, settings.max_query_profiles)
    tree = _tree(store, merged)
    rows = top_rows(tree)
    names = store.functions.names(r.function_id for r in rows)
    rows = sort_rows(rows, names)
    if limit is not None:
        rows = rows[:limit]
    d = merged.divisor
    return {
        "type": query.kind,
        "sample_type": merged.sample_type,
        "unit": merged.unit,
        "aggregation": merged.aggregation,
        "profiles": merged.profile_count,
        "total": _number(int(tree.total[0]), d),
        "rows": [
            {"name": names.get(r.function_id, "?"), "flat": _number(r.flat, d), "cum": _number(r.cum, d)} for r in rows
        ],
    }


def flame(
    store: Store, settings: Settings, query: ProfileQuery, max_nodes: int, drop_empty: bool = False
) -> dict[str, Any]:
    """The merged flame graph; ``drop_empty`` leaves out nodes of value zero (see :func:`flamegraph`)."""
    merged = merge_profiles(store, query, settings.max_query_profiles)
    tree = _tree(store, merged)
    names = store.functions.names(set(tree.function.tolist()))
    graph = flamegraph(tree, names, max_nodes, merged.divisor, drop_empty=drop_empty)
    return {
        "type": query.kind,
        "sample_type": merged.sample_type,
        "unit": merged.unit,
        "aggregation": merged.aggregation,
        "profiles": merged.profile_count,
        **graph,
    }


def pprof_export(store: Store, settings: Settings, query: ProfileQuery) -> bytes:
    """The merged profile; aggregation ``avg`` divides every value by the number of profiles."""
    series, sample_selector = split_selector(store, query)
    profiles = profiles_of(store, series, query, settings.max_query_profiles)
    divide = sum(p.profiles for p in profiles) if query.aggregation == "avg" and profiles else 1
    return encode(export_profile(store, profiles, divide, sample_selector))


def series_list(store: Store, kind: str | None, selector: Selector) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "type": s.kind, "labels": s.labels}
        for s in store.series.all()
        if kind in (None, s.kind) and selector.matches(s.labels)
    ]


def profile_list(store: Store, settings: Settings, query: ProfileQuery, limit: int) -> dict[str, Any]:
    series = {s.id: s for s in matching_series(store, query)}
    profiles = store.profiles.list(list(series), query.start_ns, query.end_ns + 1, limit)
    truncated = len(profiles) > limit
    return {
        "profiles": [
            {
                "id": p.id,
                "series_id": p.series_id,
                "labels": series[p.series_id].labels,
                "time": format_time(p.time_ns),
                "time_ns": p.time_ns,
                "duration_ns": p.duration_ns,
                "samples": p.samples,
                "totals": {
                    entry.split("/", 1)[0]: total for entry, total in zip(p.sample_types, p.totals, strict=True)
                },
            }
            for p in profiles[:limit]
        ],
        "truncated": truncated,
    }


def one_profile(store: Store, profile_id: int) -> tuple[ProfileMeta, str]:
    meta = store.profiles.get(profile_id)
    if meta is None:
        raise NotFound(f"no profile with id {profile_id}")
    kind = next((s.kind for s in store.series.all() if s.id == meta.series_id), "")
    return meta, kind


def profile_pprof(store: Store, profile_id: int) -> bytes:
    meta, _ = one_profile(store, profile_id)
    return encode(export_profile(store, [meta]))


def profile_view(store: Store, profile_id: int, sample: str | None, view: str, max_nodes: int) -> dict[str, Any]:
    """Top table or flame graph of a single stored profile."""
    meta, kind = one_profile(store, profile_id)
    sample_type, unit = resolve_sample([meta], sample)
    merged = merge_selected(store, [meta], sample_type, unit, "sum")
    tree = _tree(store, merged)
    header = {"id": meta.id, "type": kind, "sample_type": sample_type, "unit": unit, "time": format_time(meta.time_ns)}
    if view == "flamegraph":
        names = store.functions.names(set(tree.function.tolist()))
        return {**header, **flamegraph(tree, names, max_nodes)}
    rows = top_rows(tree)
    names = store.functions.names(r.function_id for r in rows)
    return {
        **header,
        "total": int(tree.total[0]),
        "rows": [{"name": names.get(r.function_id, "?"), "flat": r.flat, "cum": r.cum} for r in sort_rows(rows, names)],
    }
