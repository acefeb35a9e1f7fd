"""The query operations the API and CLI expose, each returning plain JSON-ready data."""

from __future__ import annotations

from typing import Any

from server.pprof import encode
from server.query.export import export_profile
from server.query.flamegraph import flamegraph
from server.query.merge import Merged, merge_profiles, select_profiles
from server.query.request import ProfileQuery
from server.query.selector import Selector
from server.query.top import sort_rows, top_rows
from server.query.tree import CallTree, build_tree
from server.settings import Settings
from server.store.repository import Store


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
        "profiles": len(merged.profiles),
        "total": _number(tree.total, d),
        "rows": [
            {"name": names.get(r.function_id, "?"), "flat": _number(r.flat, d), "cum": _number(r.cum, d)} for r in rows
        ],
    }


def flame(store: Store, settings: Settings, query: ProfileQuery, max_nodes: int) -> dict[str, Any]:
    merged = merge_profiles(store, query, settings.max_query_profiles)
    tree = _tree(store, merged)
    names = store.functions.names(set(tree.function.tolist()))
    graph = flamegraph(tree, names, max_nodes, merged.divisor)
    return {
        "type": query.kind,
        "sample_type": merged.sample_type,
        "unit": merged.unit,
        "aggregation": merged.aggregation,
        "profiles": len(merged.profiles),
        **graph,
    }


def pprof_export(store: Store, settings: Settings, query: ProfileQuery) -> bytes:
    """The merged profile; aggregation ``avg`` divides every value by the number of profiles."""
    profiles = select_profiles(store, query, settings.max_query_profiles)
    divide = len(profiles) if query.aggregation == "avg" and profiles else 1
    return encode(export_profile(store, profiles, divide))


def label_names(store: Store, kind: str | None = None) -> list[str]:
    names = {name for s in store.series.all() if kind in (None, s.kind) for name in s.labels}
    return sorted(names)


def label_values(store: Store, name: str, kind: str | None = None, selector: Selector | None = None) -> list[str]:
    return sorted(
        {
            s.labels[name]
            for s in store.series.all()
            if name in s.labels and kind in (None, s.kind) and (selector is None or selector.matches(s.labels))
        }
    )
