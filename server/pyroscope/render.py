"""``GET /pyroscope/render`` and ``/pyroscope/render-diff``: Pyroscope's legacy flamebearer JSON.

Grafana's Profiles Drilldown app draws its diff view from ``render-diff``,
through Grafana's data source proxy; ``render`` is the single graph with its
timeline. Both answer the querier's own flame graphs
(:mod:`server.pyroscope.querier`) in the older envelope::

    {"version": 1,
     "flamebearer": {"names": [...], "levels": [[...]], "numTicks": N, "maxSelf": M},
     "metadata": {"format": "single" | "double", "spyName": "", "sampleRate": R, "units": U, "name": T},
     "timeline": {"startTime": s, "samples": [...], "durationDelta": step_s, "watermarks": null},
     "groups": null, "heatmap": null, "leftTicks": L, "rightTicks": R}   (the last two in a diff)

``query`` is a profile type ID followed by a selector
(``process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}``), or a
selector naming the type in ``__name__``. Times are Unix seconds,
milliseconds, microseconds or nanoseconds (told apart by their size, as
Pyroscope does), or ``now-1h``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from server.api.deps import ReaderDep, SettingsDep
from server.errors import InvalidParameter
from server.pyroscope import querier
from server.pyroscope.flamebearer import Flamebearer, FlamebearerDiff, FlamebearerProfile, Metadata, Timeline
from server.pyroscope.profiletypes import ProfileType, parse_id
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.pyroscope.proto.types.v1 import types_pb2
from server.query.selector import parse_selector
from server.syntax.times import parse_time_ns

router = APIRouter(prefix="/pyroscope", tags=["pyroscope"])

#: Timeline resolution: Pyroscope aims at 1500 points, never finer than 15 s.
TIMELINE_POINTS = 1500
MIN_STEP_S = 15
#: Pyroscope's rounded steps, in seconds: the first at or above the raw interval's band wins.
_ROUNDED = (
    (17.5, 15), (25, 20), (45, 30), (90, 60), (210, 120), (450, 300), (750, 600), (1050, 900), (1500, 1200),
    (2700, 1800), (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600), (86400, 43200), (604800, 86400),
    (1814400, 604800), (3628800, 2592000),
)  # fmt: skip


def timeline_step(start_ms: int, end_ms: int) -> int:
    """Seconds between timeline points: the range over 1500, at least 15 s, rounded as Pyroscope rounds it."""
    raw = (end_ms - start_ms) / 1000 / TIMELINE_POINTS
    if raw < MIN_STEP_S:
        return MIN_STEP_S
    for bound, step in _ROUNDED:
        if raw <= bound:
            return step
    return 31_536_000


def render_time_ms(text: str | None, parameter: str) -> int:
    """Unix s/ms/µs/ns by digit count, or anything :func:`parse_time_ns` reads (``now-1h``, RFC 3339)."""
    if not text:
        raise InvalidParameter(parameter, "required (Unix time or now-1h)")
    value = text.strip()
    if value.isdigit():
        number = int(value)
        if number < 10**11:
            return number * 1000  # seconds
        if number < 10**14:
            return number  # milliseconds
        if number < 10**17:
            return number // 1000  # microseconds
        return number // 1_000_000  # nanoseconds
    return parse_time_ns(value, parameter) // 1_000_000


def split_query(text: str | None, parameter: str) -> tuple[ProfileType, str]:
    """``<profile type ID>{selector}`` (or the ID in a ``__name__`` matcher) to the ID and the selector."""
    if not text or not text.strip():
        raise InvalidParameter(parameter, "required: a profile type and a selector, e.g. process_cpu:cpu:...{}")
    value = text.strip()
    brace = value.find("{")
    name, selector = (value, "{}") if brace < 0 else (value[:brace].strip(), value[brace:])
    if not name:
        matchers = parse_selector(selector, parameter).matchers
        named = [m for m in matchers if m.name == "__name__" and m.op == "="]
        if not named:
            raise InvalidParameter(
                parameter, "must name a profile type, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{}"
            )
        name = named[0].value
        rest = [m for m in matchers if m is not named[0]]
        selector = "{" + ",".join(f"{m.name}{m.op}{_quoted(m.value)}" for m in rest) + "}"
    return parse_id(name, parameter), selector


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _max_nodes(request: Request) -> int | None:
    for name in ("max-nodes", "maxNodes"):
        text = request.query_params.get(name)
        if text and text.lstrip("-").isdigit() and int(text) != 0:
            return int(text)
    return None


def units(profile_type: ProfileType) -> tuple[str, int]:
    """Flamebearer's units and sample rate for a type, as Pyroscope names them."""
    if profile_type.sample_type == "cpu":
        return "samples", 1_000_000_000
    if profile_type.sample_type in ("inuse_objects", "alloc_objects", "goroutine", "samples"):
        return "objects", 100
    return profile_type.sample_unit, 100


def _parts(
    graph: querier_pb2.FlameGraph | querier_pb2.FlameGraphDiff, profile_type: ProfileType, double: bool
) -> tuple[Flamebearer, Metadata]:
    unit, rate = units(profile_type)
    bearer = Flamebearer(
        names=list(graph.names),
        levels=[list(level.values) for level in graph.levels],
        numTicks=graph.total,
        maxSelf=graph.max_self,
    )
    metadata = Metadata(
        format="double" if double else "single", spyName="", sampleRate=rate, units=unit, name=profile_type.sample_type
    )
    return bearer, metadata


def timeline(points: list[tuple[int, float]], start_ms: int, end_ms: int, step_s: int) -> Timeline:
    """Samples every ``step_s`` seconds from ``start``, zero where no point is; points outside the range dropped."""
    start_s = start_ms // 1000
    size = max(0, (end_ms // 1000 - start_s) // step_s)
    samples = [0] * size
    for stamp, value in points:
        if start_ms <= stamp < end_ms:
            index = (stamp // 1000 - start_s) // step_s
            if 0 <= index < size:
                samples[index] = int(value)
    return Timeline(startTime=start_s, samples=samples, durationDelta=step_s)


@router.get("/render")
def render(
    request: Request,
    store: ReaderDep,
    settings: SettingsDep,
    query: Annotated[str | None, Query()] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    until: Annotated[str | None, Query()] = None,
    group_by: Annotated[list[str] | None, Query(alias="groupBy")] = None,
    aggregation: Annotated[str | None, Query(pattern="^(sum|avg)$")] = None,
    format: Annotated[str, Query(pattern="^json$")] = "json",
) -> FlamebearerProfile:
    profile_type, selector = split_query(query, "query")
    start_ms, end_ms = render_time_ms(from_, "from"), render_time_ms(until, "until")
    select = querier_pb2.SelectMergeStacktracesRequest(
        profile_typeID=profile_type.id, label_selector=selector, start=start_ms, end=end_ms
    )
    nodes = _max_nodes(request)
    if nodes is not None:
        select.max_nodes = nodes
    graph = querier.merged_flame_graph(store, settings, select)
    step = timeline_step(start_ms, end_ms)
    series_request = querier_pb2.SelectSeriesRequest(
        profile_typeID=profile_type.id,
        label_selector=selector,
        start=start_ms,
        end=end_ms,
        step=step,
        group_by=group_by or [],
    )
    if aggregation == "avg":
        series_request.aggregation = types_pb2.TIME_SERIES_AGGREGATION_TYPE_AVERAGE
    lines = querier.series_lines(store, settings, series_request)
    bearer, metadata = _parts(graph, profile_type, double=False)
    only = [(p.timestamp, p.value) for p in lines[0].points] if len(lines) == 1 else []
    answer = FlamebearerProfile(flamebearer=bearer, metadata=metadata, timeline=timeline(only, start_ms, end_ms, step))
    if group_by:
        answer.groups = {
            next((label.value for label in line.labels if label.name == group_by[0]), "*"): timeline(
                [(p.timestamp, p.value) for p in line.points], start_ms, end_ms, step
            )
            for line in lines
        }
    return answer


@router.get("/render-diff")
def render_diff(
    request: Request,
    store: ReaderDep,
    settings: SettingsDep,
    left_query: Annotated[str | None, Query(alias="leftQuery")] = None,
    left_from: Annotated[str | None, Query(alias="leftFrom")] = None,
    left_until: Annotated[str | None, Query(alias="leftUntil")] = None,
    right_query: Annotated[str | None, Query(alias="rightQuery")] = None,
    right_from: Annotated[str | None, Query(alias="rightFrom")] = None,
    right_until: Annotated[str | None, Query(alias="rightUntil")] = None,
) -> FlamebearerDiff:
    sides = []
    for text, since, until, names in (
        (left_query, left_from, left_until, ("leftQuery", "leftFrom", "leftUntil")),
        (right_query, right_from, right_until, ("rightQuery", "rightFrom", "rightUntil")),
    ):
        profile_type, selector = split_query(text, names[0])
        side = querier_pb2.SelectMergeStacktracesRequest(
            profile_typeID=profile_type.id,
            label_selector=selector,
            start=render_time_ms(since, names[1]),
            end=render_time_ms(until, names[2]),
        )
        nodes = _max_nodes(request)
        if nodes is not None:
            side.max_nodes = nodes
        sides.append((profile_type, side))
    (left_type, left), (right_type, right) = sides
    if left_type != right_type:
        raise InvalidParameter("rightQuery", f"the profile types must match ({left_type.id}, {right_type.id})")
    graph = querier.diff_flame_graph(store, settings, left, right)
    bearer, metadata = _parts(graph, left_type, double=True)
    return FlamebearerDiff(
        flamebearer=bearer, metadata=metadata, leftTicks=graph.leftTicks, rightTicks=graph.rightTicks
    )
