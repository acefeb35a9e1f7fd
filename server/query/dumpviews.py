"""What the goroutine endpoints answer: groups of the latest dump at a time, leak suspects, a stack's trend.

Plain dictionaries ready for JSON, built from the store; the routers in
``server/api/goroutines.py`` only parse parameters and call these.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from server.errors import NotFound, TooExpensive
from server.query.leaks import LeakSuspect, find_leak_suspects
from server.query.selector import Selector
from server.scrape.spec import DUMP_KIND
from server.store.dumps import StackInfo
from server.store.repository import Store
from server.store.series import SeriesInfo
from server.syntax.times import format_time

#: Dumps one trend reads at most.
MAX_TREND_DUMPS = 20_000


def dump_series(store: Store, selector: Selector) -> list[SeriesInfo]:
    return [s for s in store.series.all() if s.kind == DUMP_KIND and selector.matches(s.labels)]


def stack_json(stack: StackInfo | None) -> dict[str, Any]:
    if stack is None:
        return {"function": "", "location": "", "created_by": "", "created_at": "", "frames": []}
    return {
        "function": stack.function,
        "location": stack.location,
        "created_by": stack.created_by,
        "created_at": stack.created_at,
        "frames": [{"function": f, "file": file, "line": line} for f, file, line in stack.frames],
    }


def groups_at(store: Store, selector: Selector, at_ns: int, limit: int) -> dict[str, Any]:
    """Per matching instance, its newest dump at or before ``at_ns`` and that dump's groups, largest first."""
    series = {s.id: s for s in dump_series(store, selector)}
    dumps = store.goroutines.latest_at(list(series), at_ns)
    groups = store.goroutines.groups([d.id for d in dumps])
    stacks = store.goroutines.stacks([g.stack_id for g in groups])
    by_dump: defaultdict[int, list[Any]] = defaultdict(list)
    for group in groups:
        by_dump[group.dump_id].append(group)
    instances = []
    for dump in sorted(dumps, key=lambda d: sorted(series[d.series_id].labels.items())):
        found = sorted(by_dump[dump.id], key=lambda g: (-g.count, g.state, g.stack_id))
        instances.append(
            {
                "labels": series[dump.series_id].labels,
                "time": format_time(dump.time_ns),
                "time_ns": dump.time_ns,
                "goroutines": dump.goroutines,
                "groups": [
                    {
                        "stack_id": g.stack_id,
                        "state": g.state,
                        "count": g.count,
                        "max_wait_minutes": g.max_wait_minutes,
                        "median_wait_minutes": g.median_wait_minutes,
                        "locked": g.locked,
                        **stack_json(stacks.get(g.stack_id)),
                    }
                    for g in found[:limit]
                ],
                "truncated": len(found) > limit,
            }
        )
    return {"at": format_time(at_ns), "instances": instances}


def suspect_json(suspect: LeakSuspect) -> dict[str, Any]:
    return {
        "labels": suspect.labels,
        "stack_id": suspect.stack_id,
        "function": suspect.function,
        "location": suspect.location,
        "created_by": suspect.created_by,
        "state": suspect.state,
        "count_start": suspect.count_start,
        "count_end": suspect.count_end,
        "growth_per_hour": round(suspect.growth_per_hour, 3),
        "rising_fraction": round(suspect.rising_fraction, 4),
        "waits_growing": suspect.waits_growing,
        "score": round(suspect.score, 3),
    }


def leaks(store: Store, query: str, start_ns: int, end_ns: int, limit: int) -> dict[str, Any]:
    suspects = find_leak_suspects(store, query, start_ns, end_ns, limit=limit)
    stacks = store.goroutines.stacks([s.stack_id for s in suspects])
    return {
        "from": format_time(start_ns),
        "to": format_time(end_ns),
        "suspects": [suspect_json(s) | {"frames": stack_json(stacks.get(s.stack_id))["frames"]} for s in suspects],
    }


def stack_trend(store: Store, selector: Selector, stack_id: int, start_ns: int, end_ns: int) -> dict[str, Any]:
    """Goroutines of one stack per dump (0 when a dump lacks it), per instance, beside each dump's total."""
    stacks = store.goroutines.stacks([stack_id])
    if stack_id not in stacks:
        raise NotFound(f"no goroutine stack with id {stack_id}")
    series = {s.id: s for s in dump_series(store, selector)}
    dumps = store.goroutines.dumps(list(series), start_ns, end_ns, MAX_TREND_DUMPS)
    if len(dumps) > MAX_TREND_DUMPS:
        raise TooExpensive(f"more than {MAX_TREND_DUMPS} dumps in the range; narrow the selector or the range")
    points = {(p.dump_id, p.stack_id): p for p in store.goroutines.stack_points([d.id for d in dumps])}
    lines: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for dump in dumps:
        point = points.get((dump.id, stack_id))
        lines[dump.series_id].append(
            {
                "time": format_time(dump.time_ns),
                "time_ns": dump.time_ns,
                "count": point.count if point else 0,
                "max_wait_minutes": point.max_wait_minutes if point else 0,
                "goroutines": dump.goroutines,
            }
        )
    return {
        "stack_id": stack_id,
        **stack_json(stacks[stack_id]),
        "series": [{"labels": series[sid].labels, "points": pts} for sid, pts in lines.items()],
    }


def goroutine_totals(store: Store) -> list[tuple[dict[str, str], int]]:
    """The goroutine count of every instance's newest dump: what ``/metrics`` exports."""
    series = {s.id: s for s in store.series.all() if s.kind == DUMP_KIND}
    return [(series[d.series_id].labels, d.goroutines) for d in store.goroutines.newest(list(series))]
