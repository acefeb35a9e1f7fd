"""``querier.v1.QuerierService`` over Connect: what Grafana's Pyroscope data source calls.

Each handler turns the request message into the same query a Stackyard API
route runs (:mod:`server.query`), and its answer into the response message;
the selection and merging are the query services' own, so every number
equals ``/api/v1/flamegraph``, ``/api/v1/pprof`` and ``/api/v1/diff``.

Times are Unix milliseconds. A range ``[start, end]`` holds the profiles
stamped in those milliseconds, both ends included; ``0`` for both means all
of time, as Pyroscope lets a client leave them out. Merges are sums (as
Pyroscope's are), for gauges too: ``go tool pprof`` merges the same way.
"""

from __future__ import annotations

import gzip

from fastapi import Request

from server.api.deps import reader_of, settings_of
from server.errors import InvalidParameter
from server.pyroscope import flame
from server.pyroscope.connect import BodyLimits, ConnectService
from server.pyroscope.labels import (
    VIRTUAL,
    PyroscopeSelector,
    matcher,
    matching,
    parse,
    to_pyroscope,
    to_store,
)
from server.pyroscope.profiletypes import ProfileType, kind_of, parse_id, series_filter
from server.pyroscope.proto.google.v1 import profile_pb2
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.pyroscope.proto.types.v1 import types_pb2
from server.query import catalog, service
from server.query.diff import compare, diff_flamegraph
from server.query.request import ProfileQuery
from server.query.selector import Selector
from server.query.timeseries import step_sums
from server.settings import Settings
from server.store.repository import Store

MS = 1_000_000
#: All of time, for a request that leaves its range out.
EVER = (-(2**62), 2**62)
#: A query is a few selectors and names: a megabyte is far more than any client sends.
QUERY_BODY_BYTES = 1024 * 1024


def _query_limits(settings: Settings) -> BodyLimits:
    return BodyLimits(
        min(QUERY_BODY_BYTES, settings.max_body_bytes), min(QUERY_BODY_BYTES, settings.max_decompressed_bytes)
    )


querier = ConnectService(querier_pb2.DESCRIPTOR.services_by_name["QuerierService"], limits=_query_limits)


def _state(request: Request) -> tuple[Store, Settings]:
    return reader_of(request), settings_of(request)


def time_range(start_ms: int, end_ms: int, names: tuple[str, str] = ("start", "end")) -> tuple[int, int]:
    """``[start, end]`` in ms to an inclusive range in ns (every nanosecond of the end millisecond)."""
    if start_ms == 0 and end_ms == 0:
        return EVER
    if end_ms < start_ms:
        raise InvalidParameter(names[1], f"{end_ms} is before {names[0]} {start_ms} (both Unix milliseconds)")
    return start_ms * MS, end_ms * MS + MS - 1


def _selectors(matchers: list[str]) -> list[PyroscopeSelector]:
    return [parse(text, "matchers") for text in matchers]


@querier.unary("ProfileTypes", querier_pb2.ProfileTypesRequest)
def profile_types(message: querier_pb2.ProfileTypesRequest, request: Request) -> querier_pb2.ProfileTypesResponse:
    """The types with data in the range (Grafana's "Save & test" asks for 1970: the answer is empty, and 200)."""
    store, _ = _state(request)
    start_ns, end_ns = time_range(message.start, message.end)
    found = {series.profile_type for series in matching(catalog.active_series(store, start_ns, end_ns), [])}
    answer = querier_pb2.ProfileTypesResponse()
    for profile_type in sorted(found, key=lambda t: t.id):
        answer.profile_types.add(
            ID=profile_type.id,
            name=profile_type.name,
            sample_type=profile_type.sample_type,
            sample_unit=profile_type.sample_unit,
            period_type=profile_type.period_type,
            period_unit=profile_type.period_unit,
        )
    return answer


@querier.unary("LabelNames", types_pb2.LabelNamesRequest)
def label_names(message: types_pb2.LabelNamesRequest, request: Request) -> types_pb2.LabelNamesResponse:
    store, _ = _state(request)
    start_ns, end_ns = time_range(message.start, message.end)
    found = matching(catalog.active_series(store, start_ns, end_ns), _selectors(list(message.matchers)))
    return types_pb2.LabelNamesResponse(names=sorted({name for series in found for name in series.labels}))


@querier.unary("LabelValues", types_pb2.LabelValuesRequest)
def label_values(message: types_pb2.LabelValuesRequest, request: Request) -> types_pb2.LabelValuesResponse:
    store, _ = _state(request)
    if not message.name:
        raise InvalidParameter("name", "required: the label whose values to list")
    start_ns, end_ns = time_range(message.start, message.end)
    found = matching(catalog.active_series(store, start_ns, end_ns), _selectors(list(message.matchers)))
    values = {series.labels[message.name] for series in found if message.name in series.labels}
    return types_pb2.LabelValuesResponse(names=sorted(values))


@querier.unary("Series", querier_pb2.SeriesRequest)
def series(message: querier_pb2.SeriesRequest, request: Request) -> querier_pb2.SeriesResponse:
    """Distinct label sets of the matching series, cut to ``label_names`` when given."""
    store, _ = _state(request)
    start_ns, end_ns = time_range(message.start, message.end)
    found = matching(catalog.active_series(store, start_ns, end_ns), _selectors(list(message.matchers)))
    wanted = set(message.label_names)
    label_sets = {
        tuple(sorted((name, value) for name, value in s.labels.items() if not wanted or name in wanted)) for s in found
    }
    answer = querier_pb2.SeriesResponse()
    for label_set in sorted(label_sets):
        labels = answer.labels_set.add()
        for name, value in label_set:
            labels.labels.add(name=name, value=value)
    return answer


def profile_query(
    profile_type_id: str, label_selector: str, start_ms: int, end_ms: int, prefix: str = ""
) -> tuple[ProfileType, ProfileQuery | None]:
    """The Stackyard query for a Pyroscope selection; ``None`` when nothing can match (an empty answer).

    ``prefix`` names the part of the request in refusals (``left.`` in a diff).
    """
    profile_type = parse_id(profile_type_id, f"{prefix}profile_typeID")
    selector = parse(label_selector, f"{prefix}label_selector")
    start_ns, end_ns = time_range(start_ms, end_ms, (f"{prefix}start", f"{prefix}end"))
    kind = kind_of(profile_type)
    if kind is None or not selector.virtual.matches(profile_type.labels()):
        return profile_type, None
    matchers = selector.store.matchers
    by_name = series_filter(kind, profile_type)
    if by_name is not None:
        matchers = (*matchers, matcher(*by_name))
    query = ProfileQuery(kind, Selector(matchers), start_ns, end_ns, profile_type.sample_type, "sum")
    return profile_type, query


def _max_nodes(settings: Settings, requested: int | None, parameter: str = "max_nodes") -> int:
    if not requested:
        return settings.default_flamegraph_nodes
    if requested < 0 or requested > settings.max_flamegraph_nodes:
        raise InvalidParameter(
            parameter, f"{requested} is not between 1 and {settings.max_flamegraph_nodes} (max_flamegraph_nodes)"
        )
    return requested


def _refuse_unserved(
    message: querier_pb2.SelectMergeStacktracesRequest | querier_pb2.SelectMergeProfileRequest,
) -> None:
    if message.HasField("stack_trace_selector") and (
        message.stack_trace_selector.call_site or message.stack_trace_selector.HasField("go_pgo")
    ):
        raise InvalidParameter("stack_trace_selector", "selecting stack traces by call site or for PGO is not served")
    if message.profile_id_selector:
        raise InvalidParameter("profile_id_selector", "selecting profiles by ID is not served")


def merged_flame_graph(
    store: Store, settings: Settings, message: querier_pb2.SelectMergeStacktracesRequest, prefix: str = ""
) -> querier_pb2.FlameGraph:
    _refuse_unserved(message)
    if message.format == querier_pb2.PROFILE_FORMAT_TREE:
        raise InvalidParameter(f"{prefix}format", "the tree format is not served; ask for the flame graph")
    nodes = _max_nodes(settings, message.max_nodes if message.HasField("max_nodes") else None, f"{prefix}max_nodes")
    _, query = profile_query(message.profile_typeID, message.label_selector, message.start, message.end, prefix)
    if query is None:
        return flame.empty()
    return flame.single(service.flame(store, settings, query, nodes, drop_empty=True).graph)


@querier.unary("SelectMergeStacktraces", querier_pb2.SelectMergeStacktracesRequest)
def select_merge_stacktraces(
    message: querier_pb2.SelectMergeStacktracesRequest, request: Request
) -> querier_pb2.SelectMergeStacktracesResponse:
    store, settings = _state(request)
    return querier_pb2.SelectMergeStacktracesResponse(flamegraph=merged_flame_graph(store, settings, message))


def diff_flame_graph(
    store: Store,
    settings: Settings,
    left: querier_pb2.SelectMergeStacktracesRequest,
    right: querier_pb2.SelectMergeStacktracesRequest,
) -> querier_pb2.FlameGraphDiff:
    """Left is the base, right the comparison: each side's own values, on its own axis."""
    _refuse_unserved(left)
    _refuse_unserved(right)
    left_type, left_query = profile_query(left.profile_typeID, left.label_selector, left.start, left.end, "left.")
    right_type, right_query = profile_query(
        right.profile_typeID, right.label_selector, right.start, right.end, "right."
    )
    if left_type != right_type:
        raise InvalidParameter("right.profile_typeID", f"{right_type.id} is not the left side's {left_type.id}")
    requested = [s.max_nodes for s in (left, right) if s.HasField("max_nodes") and s.max_nodes]
    nodes = _max_nodes(settings, max(requested) if requested else None, "left.max_nodes")
    if left_query is None or right_query is None:
        return flame.empty_diff()
    comparison = compare(store, settings, right_query, left_query, normalize=False)
    return flame.diff(diff_flamegraph(comparison, nodes, per_side=True, drop_empty=True).graph)


@querier.unary("Diff", querier_pb2.DiffRequest)
def diff(message: querier_pb2.DiffRequest, request: Request) -> querier_pb2.DiffResponse:
    store, settings = _state(request)
    if not message.HasField("left") or not message.HasField("right"):
        raise InvalidParameter("left", "both left and right selections are required")
    return querier_pb2.DiffResponse(flamegraph=diff_flame_graph(store, settings, message.left, message.right))


@querier.unary("SelectMergeProfile", querier_pb2.SelectMergeProfileRequest)
def select_merge_profile(message: querier_pb2.SelectMergeProfileRequest, request: Request) -> profile_pb2.Profile:
    """The merged pprof, complete (``max_nodes`` is not applied), its default sample type the one asked for."""
    store, settings = _state(request)
    _refuse_unserved(message)
    profile_type, query = profile_query(message.profile_typeID, message.label_selector, message.start, message.end)
    if query is None:
        return profile_pb2.Profile()
    merged = profile_pb2.Profile.FromString(gzip.decompress(service.pprof_export(store, settings, query)))
    if profile_type.sample_type in merged.string_table:
        merged.default_sample_type = list(merged.string_table).index(profile_type.sample_type)
    return merged


@querier.unary("SelectSeries", querier_pb2.SelectSeriesRequest)
def select_series(message: querier_pb2.SelectSeriesRequest, request: Request) -> querier_pb2.SelectSeriesResponse:
    store, settings = _state(request)
    return querier_pb2.SelectSeriesResponse(series=series_lines(store, settings, message))


def series_lines(store: Store, settings: Settings, message: querier_pb2.SelectSeriesRequest) -> list[types_pb2.Series]:
    """Per-step sums (or averages per profile, for AVERAGE), never rates: Grafana divides by the step itself.

    As Pyroscope does, steps run from ``start`` every ``step`` seconds up to
    ``end``; a profile at ``t`` counts in the first step at or after it, and
    the point carries that step's time. Steps without data are left out, and
    so are profiles after the last step. One series per distinct set of the
    ``group_by`` labels (a series without one of them leaves it out); with
    ``limit``, the series with the largest sums.
    """
    if message.HasField("stack_trace_selector") and (
        message.stack_trace_selector.call_site or message.stack_trace_selector.HasField("go_pgo")
    ):
        raise InvalidParameter("stack_trace_selector", "selecting stack traces by call site or for PGO is not served")
    step_ms = round(message.step * 1000) if message.step == message.step else 0  # NaN is no step
    if not step_ms > 0:
        raise InvalidParameter("step", f"{message.step!r} is not a positive number of seconds")
    start_ms, end_ms = message.start, message.end
    if start_ms == 0 and end_ms == 0:
        raise InvalidParameter("start", "a series needs a time range (start and end, Unix milliseconds)")
    if message.HasField("limit") and message.limit < 0:
        raise InvalidParameter("limit", "must not be negative")
    profile_type, query = profile_query(message.profile_typeID, message.label_selector, start_ms, end_ms)
    if query is None:
        return []
    average = message.HasField("aggregation") and message.aggregation == types_pb2.TIME_SERIES_AGGREGATION_TYPE_AVERAGE
    group_by = list(dict.fromkeys(message.group_by))
    constant = {name: profile_type.labels()[name] for name in group_by if name in VIRTUAL}
    origin_ns = (start_ms - step_ms + 1) * MS  # step k holds (start + (k-1) step, start + k step], in ms
    store_group_by = [to_store(name) for name in group_by if name not in VIRTUAL]
    groups, _, _ = step_sums(store, settings, query, origin_ns, step_ms * MS, store_group_by)
    lines: list[tuple[list[tuple[str, str]], list[tuple[int, float]]]] = []
    for group in groups:
        points = []
        for step, total, profiles in zip(group.steps, group.sums, group.profiles, strict=True):
            stamp = start_ms + step * step_ms
            if stamp <= end_ms:  # Pyroscope's last step is the last one at or before end
                points.append((stamp, total / profiles if average else total))
        if points:
            lines.append((sorted({**to_pyroscope(group.labels), **constant}.items()), points))
    if message.HasField("limit") and message.limit > 0:
        lines.sort(key=lambda line: (-sum(v for _, v in line[1]), line[0]))
        lines = lines[: message.limit]
    return [
        types_pb2.Series(
            labels=[types_pb2.LabelPair(name=name, value=value) for name, value in labels],
            points=[types_pb2.Point(value=float(value), timestamp=stamp) for stamp, value in points],
        )
        for labels, points in lines
    ]


@querier.unary("GetProfileStats", types_pb2.GetProfileStatsRequest)
def get_profile_stats(
    _message: types_pb2.GetProfileStatsRequest, request: Request
) -> types_pb2.GetProfileStatsResponse:
    store, _ = _state(request)
    bounds = catalog.data_bounds(store)
    if bounds is None:
        return types_pb2.GetProfileStatsResponse(data_ingested=False)
    return types_pb2.GetProfileStatsResponse(
        data_ingested=True, oldest_profile_time=bounds.oldest_ns // MS, newest_profile_time=bounds.newest_ns // MS
    )
