"""The query operations the API and CLI expose, each returning a domain object the caller shapes for its wire."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
from server.query.byname import by_name, function_ids
from server.query.export import export_profile
from server.query.filters import NO_FILTERS, Filters, apply_filters
from server.query.flamegraph import FlameGraph, flamegraph
from server.query.lines import line_rows, line_tree
from server.query.listing import Routine, routines
from server.query.request import ProfileQuery
from server.query.sandwich import sandwich
from server.query.selector import Selector
from server.query.sourcefiles import parse_roots
from server.query.top import sort_rows, top_rows
from server.query.tree import CallTree, build_tree
from server.settings import Settings
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.store.series import SeriesInfo


@dataclass(slots=True)
class TopEntry:
    """One function's row of a top table; under ``avg`` the values are divided by the profile count.

    At line granularity ``file`` and ``line`` say which line (``line`` 0: unknown) and ``inline`` is pprof's
    mark ("inline", "partial-inline" or ""), else they are None.
    """

    name: str
    flat: float
    cum: float
    file: str | None = None
    line: int | None = None
    inline: str | None = None


@dataclass(frozen=True, slots=True)
class MergeInfo:
    """What a merged answer was made of: the profile kind, its sample type and unit, how it was aggregated."""

    kind: str
    sample_type: str
    unit: str
    aggregation: str
    profiles: int


@dataclass(frozen=True, slots=True)
class TopTable:
    """``total`` is the unfiltered one (pprof's percentages divide by it); ``shown`` what the filters kept."""

    merge: MergeInfo
    total: float
    rows: list[TopEntry]
    shown: float


@dataclass(frozen=True, slots=True)
class MergedFlameGraph:
    merge: MergeInfo
    graph: FlameGraph


@dataclass(frozen=True, slots=True)
class MergedSandwich:
    """A function's flat and cum, its callers (inverted) and callees, both as flame graphs whose root is it.

    ``total`` is the unfiltered total, which pprof's percentages divide by.
    """

    merge: MergeInfo
    function: str
    flat: float
    cum: float
    total: float
    callers: FlameGraph
    callees: FlameGraph


@dataclass(frozen=True, slots=True)
class ProfileList:
    """Stored profiles, oldest first, with their series; ``truncated`` when more matched than the limit."""

    profiles: list[ProfileMeta]
    series: dict[int, SeriesInfo]
    truncated: bool


@dataclass(frozen=True, slots=True)
class OneProfile:
    """A single stored profile and the sample type read from it."""

    meta: ProfileMeta
    kind: str
    sample_type: str
    unit: str


@dataclass(frozen=True, slots=True)
class ProfileTop:
    """``total`` is the profile's unfiltered one (pprof's percentages divide by it); ``shown`` what the filters kept."""

    profile: OneProfile
    total: int
    rows: list[TopEntry]
    shown: int


@dataclass(frozen=True, slots=True)
class ProfileFlameGraph:
    profile: OneProfile
    graph: FlameGraph


def _tree(store: Store, merged: Merged, filters: Filters = NO_FILTERS) -> tuple[CallTree, dict[int, str]]:
    """The merged call tree with same-name functions as one node (pprof's function granularity), and its names.

    Filters see each stored function with its own file, before same-name functions merge, as pprof's do.
    """
    tree = build_tree(store.stacks, merged.nodes, merged.values)
    return named_tree(store, tree, filters)


def named_tree(store: Store, tree: CallTree, filters: Filters = NO_FILTERS) -> tuple[CallTree, dict[int, str]]:
    """``tree`` (as :func:`build_tree` makes it: nodes are stack nodes) filtered, then with same-name
    functions as one node, and its names."""
    if filters.active:
        tree = apply_filters(tree, filters, store.functions.frames, store.functions)
    names = store.functions.names(function_ids(tree))
    return by_name(tree, names), names


def _number(value: int, divisor: int) -> float:
    return value if divisor == 1 else value / divisor


def _merge_info(query: ProfileQuery, merged: Merged) -> MergeInfo:
    return MergeInfo(query.kind, merged.sample_type, merged.unit, merged.aggregation, merged.profile_count)


def _entries(tree: CallTree, names: dict[int, str], divisor: int = 1, limit: int | None = None) -> list[TopEntry]:
    rows = top_rows(tree)
    rows = sort_rows(rows, names)
    if limit is not None:
        rows = rows[:limit]
    return [TopEntry(names.get(r.function_id, "?"), _number(r.flat, divisor), _number(r.cum, divisor)) for r in rows]


def top(
    store: Store,
    settings: Settings,
    query: ProfileQuery,
    limit: int | None = None,
    filters: Filters = NO_FILTERS,
    granularity: str = "functions",
) -> TopTable:
    """``go tool pprof -top``; with ``granularity="lines"``, ``-top -lines``: a row per (function, file, line)."""
    merged = merge_profiles(store, query, settings.max_query_profiles, by_node=granularity != "lines")
    d = merged.divisor
    total = _number(merged.total(), d)
    if granularity == "lines":
        tree, places, marks = line_tree(store, merged, filters)
        rows = line_rows(tree, places, marks, limit)
        entries = [TopEntry(r.name, _number(r.flat, d), _number(r.cum, d), r.file, r.line, r.inline) for r in rows]
        return TopTable(_merge_info(query, merged), total, entries, _number(int(tree.total[0]), d))
    tree, names = _tree(store, merged, filters)
    shown = _number(int(tree.total[0]), d)
    return TopTable(_merge_info(query, merged), total, _entries(tree, names, d, limit), shown)


@dataclass(frozen=True, slots=True)
class SourceListing:
    merge: MergeInfo
    total: float
    routines: list[Routine]
    divisor: int


def source(
    store: Store, settings: Settings, query: ProfileQuery, function: str, filters: Filters = NO_FILTERS
) -> SourceListing:
    """``go tool pprof -list '^F$'``: flat and cum per line of ``function``, with source text where mapped.

    ``total`` is the unfiltered one, which pprof's percentages divide by.
    """
    merged = merge_profiles(store, query, settings.max_query_profiles)
    tree, places, _ = line_tree(store, merged, filters)
    found = routines(line_rows(tree, places), function, parse_roots(settings.source_roots))
    d = merged.divisor
    return SourceListing(_merge_info(query, merged), _number(merged.total(), d), found, d)


def flame(
    store: Store,
    settings: Settings,
    query: ProfileQuery,
    max_nodes: int,
    drop_empty: bool = False,
    filters: Filters = NO_FILTERS,
) -> MergedFlameGraph:
    """The merged flame graph; ``drop_empty`` leaves out nodes of value zero (see :func:`flamegraph`).

    Under filters the root is what they kept, so the graph is whole.
    """
    merged = merge_profiles(store, query, settings.max_query_profiles, by_node=True)
    tree, names = _tree(store, merged, filters)
    graph = flamegraph(tree, names, max_nodes, merged.divisor, drop_empty=drop_empty)
    return MergedFlameGraph(_merge_info(query, merged), graph)


def sandwich_view(
    store: Store,
    settings: Settings,
    query: ProfileQuery,
    function: str,
    max_nodes: int,
    filters: Filters = NO_FILTERS,
) -> MergedSandwich:
    """The sandwich of ``function`` over the whole merged tree; ``max_nodes`` applies to each side afterwards.

    A name that has no sample in the selection is refused (a typo should not look like "no data");
    one whose samples the filters took away has empty trees and zero flat and cum.
    """
    merged = merge_profiles(store, query, settings.max_query_profiles, by_node=True)
    return _sandwich_of(store, merged, _merge_info(query, merged), function, max_nodes, filters)


def profile_sandwich(
    store: Store, profile_id: int, sample: str | None, function: str, max_nodes: int, filters: Filters = NO_FILTERS
) -> MergedSandwich:
    """:func:`sandwich_view` of a single stored profile."""
    meta, kind = one_profile(store, profile_id)
    sample_type, unit = resolve_sample([meta], sample)
    merged = merge_selected(store, [meta], sample_type, unit, "sum")
    info = MergeInfo(kind, merged.sample_type, merged.unit, merged.aggregation, merged.profile_count)
    return _sandwich_of(store, merged, info, function, max_nodes, filters)


def _sandwich_of(
    store: Store, merged: Merged, info: MergeInfo, function: str, max_nodes: int, filters: Filters
) -> MergedSandwich:
    full = build_tree(store.stacks, merged.nodes, merged.values)
    tree, names = named_tree(store, full, filters)
    known = store.functions.names(function_ids(full)) if filters.active else names  # unfiltered: the same
    if function not in known.values():
        raise NotFound(f"function {function!r} has no samples in the selected profiles")
    ids = [fid for fid, name in names.items() if name == function]  # by_name keeps the lowest id of a name
    answer = sandwich(tree, min(ids) if ids else -1, max_nodes)
    d = merged.divisor
    callers = flamegraph(answer.callers, names, max_nodes, d)
    callees = flamegraph(answer.callees, names, max_nodes, d)
    return MergedSandwich(
        merge=info,
        function=function,
        flat=_number(int(answer.flat[0]), d),
        cum=_number(int(answer.cum[0]), d),
        total=_number(merged.total(), d),
        callers=replace(callers, names=[function, *callers.names[1:]]),
        callees=replace(callees, names=[function, *callees.names[1:]]),
    )


def pprof_export(store: Store, settings: Settings, query: ProfileQuery, filters: Filters = NO_FILTERS) -> bytes:
    """The merged profile; aggregation ``avg`` divides every value by the number of profiles."""
    series, sample_selector = split_selector(store, query)
    profiles = profiles_of(store, series, query, settings.max_query_profiles)
    divide = sum(p.profiles for p in profiles) if query.aggregation == "avg" and profiles else 1
    return encode(export_profile(store, profiles, divide, sample_selector, filters))


def series_list(store: Store, kind: str | None, selector: Selector) -> list[SeriesInfo]:
    return [s for s in store.series.all() if kind in (None, s.kind) and selector.matches(s.labels)]


def profile_list(store: Store, query: ProfileQuery, limit: int) -> ProfileList:
    series = {s.id: s for s in matching_series(store, query)}
    profiles = store.profiles.list(list(series), query.start_ns, query.end_ns + 1, limit)
    return ProfileList(profiles[:limit], series, len(profiles) > limit)


def one_profile(store: Store, profile_id: int) -> tuple[ProfileMeta, str]:
    meta = store.profiles.get(profile_id)
    if meta is None:
        raise NotFound(f"no profile with id {profile_id}")
    kind = next((s.kind for s in store.series.all() if s.id == meta.series_id), "")
    return meta, kind


def profile_pprof(store: Store, profile_id: int, filters: Filters = NO_FILTERS) -> bytes:
    meta, _ = one_profile(store, profile_id)
    return encode(export_profile(store, [meta], filters=filters))


def _one_merged(store: Store, profile_id: int, sample: str | None) -> tuple[OneProfile, Merged]:
    """A single stored profile's samples of one type, by sample key (so line granularity can read them)."""
    meta, kind = one_profile(store, profile_id)
    sample_type, unit = resolve_sample([meta], sample)
    merged = merge_selected(store, [meta], sample_type, unit, "sum")
    return OneProfile(meta, kind, sample_type, unit), merged


def _profile_tree(
    store: Store, profile_id: int, sample: str | None, filters: Filters
) -> tuple[OneProfile, Merged, CallTree, dict[int, str]]:
    profile, merged = _one_merged(store, profile_id, sample)
    tree, names = _tree(store, merged, filters)
    return profile, merged, tree, names


def profile_top(
    store: Store, profile_id: int, sample: str | None, filters: Filters = NO_FILTERS, granularity: str = "functions"
) -> ProfileTop:
    """The top table of a single stored profile; with ``granularity="lines"``, ``go tool pprof -top -lines``."""
    if granularity == "lines":
        profile, merged = _one_merged(store, profile_id, sample)
        lines, places, marks = line_tree(store, merged, filters)
        rows = [TopEntry(r.name, r.flat, r.cum, r.file, r.line, r.inline) for r in line_rows(lines, places, marks)]
        return ProfileTop(profile, merged.total(), rows, int(lines.total[0]))
    profile, merged, tree, names = _profile_tree(store, profile_id, sample, filters)
    return ProfileTop(profile, merged.total(), _entries(tree, names), int(tree.total[0]))


def profile_source(
    store: Store,
    settings: Settings,
    profile_id: int,
    sample: str | None,
    function: str,
    filters: Filters = NO_FILTERS,
) -> SourceListing:
    """:func:`source` (``go tool pprof -list '^F$'``) of a single stored profile."""
    profile, merged = _one_merged(store, profile_id, sample)
    lines, places, _ = line_tree(store, merged, filters)
    found = routines(line_rows(lines, places), function, parse_roots(settings.source_roots))
    info = MergeInfo(profile.kind, merged.sample_type, merged.unit, merged.aggregation, merged.profile_count)
    return SourceListing(info, merged.total(), found, 1)


def profile_flamegraph(
    store: Store, profile_id: int, sample: str | None, max_nodes: int, filters: Filters = NO_FILTERS
) -> ProfileFlameGraph:
    """The flame graph of a single stored profile; under filters its root is what they kept."""
    profile, _, tree, names = _profile_tree(store, profile_id, sample, filters)
    return ProfileFlameGraph(profile, flamegraph(tree, names, max_nodes))
