"""Leak suspects: the stacks whose goroutine count grows steadily over a window.

For every instance (series of kind ``goroutine_dump``) that the selector
matches, each stack's goroutine count (all states together) is followed from
dump to dump in the window, with 0 where a dump lacks the stack. A stack is a
suspect when all of these hold:

- at least :data:`MIN_DUMPS` dumps of the instance fall in the window;
- its count at the end is at least :data:`MIN_GROWTH` higher than at the
  start, and the least-squares slope over time is positive (a service opening
  its few keep-alive connections right after start is not a leak);
- it rose across at least :data:`MIN_RISING_FRACTION` of the window, which a
  leak does and a burst of work that comes and goes does not. The window is cut
  into up to :data:`SEGMENTS` equal parts (fewer when there are fewer dumps:
  then each part is one interval between dumps), and a part "rose" when the
  count at its end is above the count at its start. Parts, not single
  intervals, so a slow leak that adds one goroutine every half hour still
  rises everywhere when dumps come every minute;
- no single step carries more than :data:`MAX_STEP_SHARE` of the net growth,
  so a one-off jump (a pool filling up once) is not a leak.

``score`` ranks them: growth per hour times the rising fraction, and half as
much again when the longest wait also grew (goroutines that never return keep
getting older, whereas busy ones are replaced).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.errors import TooExpensive
from server.query.selector import parse_selector
from server.scrape.spec import DUMP_KIND
from server.store.repository import Store

MIN_DUMPS = 4
MIN_GROWTH = 5
MIN_RISING_FRACTION = 0.5
SEGMENTS = 12
MAX_STEP_SHARE = 0.75
WAITS_GROWING_BONUS = 1.5
#: Dumps one leak search reads at most (a day of 1-minute dumps of 13 instances).
MAX_DUMPS = 20_000
NS_PER_HOUR = 3600 * 10**9
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LeakSuspect:
    labels: dict[str, str]  # the instance's series labels, service and instance included
    stack_id: int
    function: str  # where its goroutines block: the first frame outside the runtime
    location: str  # file:line of that frame
    created_by: str
    state: str  # the state most of its goroutines were in at the last dump
    count_start: int
    count_end: int
    growth_per_hour: float  # least-squares slope
    rising_fraction: float  # share of the window in which the count rose
    waits_growing: bool
    score: float


def find_leak_suspects(store: Store, query: str, from_ns: int, to_ns: int, *, limit: int = 50) -> list[LeakSuspect]:
    """Suspects among the instances matching ``query`` in ``[from_ns, to_ns]``, highest score first."""
    selector = parse_selector(query)
    series = {s.id: s for s in store.series.all() if s.kind == DUMP_KIND and selector.matches(s.labels)}
    dumps = store.goroutines.dumps(list(series), from_ns, to_ns, MAX_DUMPS)
    if len(dumps) > MAX_DUMPS:
        raise TooExpensive(
            f"the window holds more than {MAX_DUMPS} goroutine dumps; narrow the selector or the time range"
        )
    by_series: defaultdict[int, list[int]] = defaultdict(list)
    time_of: dict[int, int] = {}
    for dump in dumps:
        by_series[dump.series_id].append(dump.id)
        time_of[dump.id] = dump.time_ns
    found: list[tuple[int, int, _Trend]] = []
    for series_id, dump_ids in by_series.items():
        if len(dump_ids) < MIN_DUMPS:
            continue
        hours = (np.array([time_of[d] for d in dump_ids], dtype=np.float64) - time_of[dump_ids[0]]) / NS_PER_HOUR
        found.extend((series_id, stack_id, trend) for stack_id, trend in _series_trends(store, dump_ids, hours))
    found.sort(key=lambda item: -item[2].score)
    found = found[:limit]
    stacks = store.goroutines.stacks([stack_id for _, stack_id, _ in found])
    last_states = _last_states(store, {(series_id, stack_id) for series_id, stack_id, _ in found}, by_series)
    result = []
    for series_id, stack_id, trend in found:
        stack = stacks.get(stack_id)
        result.append(
            LeakSuspect(
                labels=dict(series[series_id].labels),
                stack_id=stack_id,
                function=stack.function if stack else "",
                location=stack.location if stack else "",
                created_by=stack.created_by if stack else "",
                state=last_states.get((series_id, stack_id), ""),
                count_start=trend.count_start,
                count_end=trend.count_end,
                growth_per_hour=trend.slope,
                rising_fraction=trend.rising_fraction,
                waits_growing=trend.waits_growing,
                score=trend.score,
            )
        )
    return result


def _series_trends(store: Store, dump_ids: list[int], hours: FloatArray) -> list[tuple[int, _Trend]]:
    """The growing stacks of one instance, from its dumps (oldest first) at ``hours`` into the window."""
    position = {dump_id: i for i, dump_id in enumerate(dump_ids)}
    counts: dict[int, IntArray] = {}
    waits: dict[int, IntArray] = {}
    for point in store.goroutines.stack_points(dump_ids):
        if point.stack_id not in counts:
            counts[point.stack_id] = np.zeros(len(dump_ids), dtype=np.int64)
            waits[point.stack_id] = np.zeros(len(dump_ids), dtype=np.int64)
        counts[point.stack_id][position[point.dump_id]] = point.count
        waits[point.stack_id][position[point.dump_id]] = point.max_wait_minutes
    result = []
    for stack_id, stack_counts in counts.items():
        trend = _trend(hours, stack_counts, waits[stack_id])
        if trend is not None:
            result.append((stack_id, trend))
    return result


@dataclass(frozen=True, slots=True)
class _Trend:
    count_start: int
    count_end: int
    slope: float
    rising_fraction: float
    waits_growing: bool
    score: float


def _trend(hours: FloatArray, counts: IntArray, waits: IntArray) -> _Trend | None:
    """The stack's trend if it grows steadily, else ``None`` (see the module docstring for the rules)."""
    start, end = int(counts[0]), int(counts[-1])
    growth = end - start
    span = float(hours[-1] - hours[0])
    if growth < MIN_GROWTH or span <= 0:
        return None
    steps = np.diff(counts)
    if int(steps.max()) > MAX_STEP_SHARE * growth:
        return None
    rising = _rising_fraction(hours, counts, span)
    if rising < MIN_RISING_FRACTION:
        return None
    centred = hours - hours.mean()
    slope = float((centred * (counts - counts.mean())).sum() / (centred * centred).sum())
    if slope <= 0:
        return None
    present = np.flatnonzero(counts > 0)
    waits_growing = bool(present.size and waits[present[-1]] > waits[present[0]])
    score = slope * rising * (WAITS_GROWING_BONUS if waits_growing else 1.0)
    return _Trend(start, end, slope, rising, waits_growing, score)


def _rising_fraction(hours: FloatArray, counts: IntArray, span: float) -> float:
    """Share of the window's equal parts whose end count is above their start count."""
    parts = min(len(hours) - 1, SEGMENTS)
    # The count at each part's edge is that of the last dump at or before it (a hair of slack for float edges).
    edges = hours[0] + span * np.arange(parts + 1) / parts + span * 1e-9
    at_edge = counts[np.searchsorted(hours, edges, side="right") - 1]
    return float((np.diff(at_edge) > 0).sum()) / parts


def _last_states(
    store: Store, wanted: set[tuple[int, int]], dumps_of: dict[int, list[int]]
) -> dict[tuple[int, int], str]:
    """For each (series, stack), the state holding most of its goroutines in the last dump of the window."""
    last_dumps = {dumps_of[series_id][-1]: series_id for series_id, _ in wanted}
    best: dict[tuple[int, int], tuple[int, str]] = {}
    for group in store.goroutines.groups(list(last_dumps)):
        key = (last_dumps[group.dump_id], group.stack_id)
        if key in wanted and group.count > best.get(key, (-1, ""))[0]:
            best[key] = (group.count, group.state)
    return {key: state for key, (_, state) in best.items()}
