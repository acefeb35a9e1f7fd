"""What the goroutine endpoints answer: groups of the latest dump at a time, leak suspects, a stack's trend.

Built from the store as domain objects; the routers in ``server/api/goroutines.py``
only parse parameters, call these and shape the answers for JSON.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from server.errors import NotFound, TooExpensive
from server.query.leaks import LeakSuspect, find_leak_suspects
from server.query.selector import Selector
from server.scrape.spec import DUMP_KIND
from server.store.dumps import DumpInfo, StackInfo, StackPoint, StoredGroup
from server.store.repository import Store
from server.store.series import SeriesInfo

#: Dumps one trend reads at most.
MAX_TREND_DUMPS = 20_000


@dataclass(frozen=True, slots=True)
class GroupView:
    """A group of one dump and its stack (None when the stack is gone)."""

    group: StoredGroup
    stack: StackInfo | None


@dataclass(frozen=True, slots=True)
class InstanceGroups:
    """One instance's newest dump at the asked time, its largest groups first."""

    labels: dict[str, str]
    dump: DumpInfo
    groups: list[GroupView]
    truncated: bool  # more groups than the limit


@dataclass(frozen=True, slots=True)
class GroupsAt:
    at_ns: int
    instances: list[InstanceGroups]


@dataclass(frozen=True, slots=True)
class SuspectView:
    suspect: LeakSuspect
    stack: StackInfo | None


@dataclass(frozen=True, slots=True)
class LeakReport:
    start_ns: int
    end_ns: int
    suspects: list[SuspectView]


@dataclass(frozen=True, slots=True)
class DumpPoint:
    """One dump of an instance: the stack's goroutines in it (0 when it lacks the stack) and the dump's total."""

    dump: DumpInfo
    point: StackPoint | None


@dataclass(frozen=True, slots=True)
class InstanceTrend:
    labels: dict[str, str]
    points: list[DumpPoint]


@dataclass(frozen=True, slots=True)
class StackTrend:
    stack: StackInfo
    series: list[InstanceTrend]


def dump_series(store: Store, selector: Selector) -> list[SeriesInfo]:
    return [s for s in store.series.all() if s.kind == DUMP_KIND and selector.matches(s.labels)]


def groups_at(store: Store, selector: Selector, at_ns: int, limit: int) -> GroupsAt:
    """Per matching instance, its newest dump at or before ``at_ns`` and that dump's groups, largest first."""
    series = {s.id: s for s in dump_series(store, selector)}
    dumps = store.goroutines.latest_at(list(series), at_ns)
    groups = store.goroutines.groups([d.id for d in dumps])
    stacks = store.goroutines.stacks([g.stack_id for g in groups])
    by_dump: defaultdict[int, list[StoredGroup]] = defaultdict(list)
    for group in groups:
        by_dump[group.dump_id].append(group)
    instances = []
    for dump in sorted(dumps, key=lambda d: sorted(series[d.series_id].labels.items())):
        found = sorted(by_dump[dump.id], key=lambda g: (-g.count, g.state, g.stack_id))
        views = [GroupView(g, stacks.get(g.stack_id)) for g in found[:limit]]
        instances.append(InstanceGroups(series[dump.series_id].labels, dump, views, len(found) > limit))
    return GroupsAt(at_ns, instances)


def leaks(store: Store, query: str, start_ns: int, end_ns: int, limit: int) -> LeakReport:
    suspects = find_leak_suspects(store, query, start_ns, end_ns, limit=limit)
    stacks = store.goroutines.stacks([s.stack_id for s in suspects])
    return LeakReport(start_ns, end_ns, [SuspectView(s, stacks.get(s.stack_id)) for s in suspects])


def stack_trend(store: Store, selector: Selector, stack_id: int, start_ns: int, end_ns: int) -> StackTrend:
    """Goroutines of one stack per dump (0 when a dump lacks it), per instance, beside each dump's total."""
    stacks = store.goroutines.stacks([stack_id])
    if stack_id not in stacks:
        raise NotFound(f"no goroutine stack with id {stack_id}")
    series = {s.id: s for s in dump_series(store, selector)}
    dumps = store.goroutines.dumps(list(series), start_ns, end_ns, MAX_TREND_DUMPS)
    if len(dumps) > MAX_TREND_DUMPS:
        raise TooExpensive(f"more than {MAX_TREND_DUMPS} dumps in the range; narrow the selector or the range")
    points = {(p.dump_id, p.stack_id): p for p in store.goroutines.stack_points([d.id for d in dumps])}
    lines: defaultdict[int, list[DumpPoint]] = defaultdict(list)
    for dump in dumps:
        lines[dump.series_id].append(DumpPoint(dump, points.get((dump.id, stack_id))))
    return StackTrend(stacks[stack_id], [InstanceTrend(series[sid].labels, pts) for sid, pts in lines.items()])


def goroutine_totals(store: Store) -> list[tuple[dict[str, str], int]]:
    """The goroutine count of every instance's newest dump: what ``/metrics`` exports."""
    series = {s.id: s for s in store.series.all() if s.kind == DUMP_KIND}
    return [(series[d.series_id].labels, d.goroutines) for d in store.goroutines.newest(list(series))]
