"""What a rule's ``expr`` measures on each matching series, from the stored per-profile totals.

Values are those of the trend lines (``/api/v1/timeseries``): one total per
profile of the rule's sample type (its default when none is named). CPU
totals are divided by the profile's duration, so a cpu rule speaks of CPU
seconds per second (cores); every other type uses the totals as stored
(goroutines, bytes in use, ...).

- ``value``: the newest total within :data:`LOOKBACK_NS` (a series that has
  not been scraped for that long has no value, so its alert clears);
- ``increase(W)``: newest minus oldest total within the last W (``%``: of the oldest);
- ``slope(W)``: least-squares slope of the totals within W, in the rule's unit;
- ``leak_suspect(W)``: one value per suspect stack (its growth per hour).

A series needs two profiles in the window for increase and slope; with fewer
it has no value, which is not an alert.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from server.alerts.rules import Rule
from server.query.leaks import find_leak_suspects
from server.store.alerting import Point, profile_points
from server.store.repository import Store
from server.store.series import SeriesInfo

LOOKBACK_NS = 5 * 60 * 10**9


@dataclass(frozen=True, slots=True)
class Sample:
    """One instance's value for a rule; ``labels`` are the series' labels (plus ``function`` for leak suspects)."""

    labels: dict[str, str]
    value: float


class RoundReader:
    """The profile rows one evaluation round reads: one query per (type, selector), for the longest window.

    Rules over the same series (a value rule and a growth rule on one
    service, say) then share one read, each taking the part of it its own
    window covers. Series are read once per round.
    """

    def __init__(self, store: Store, now_ns: int, max_points: int, rules: list[Rule]) -> None:
        self.store = store
        self.now_ns = now_ns
        self.max_points = max_points
        self.windows: dict[tuple[str, str], int] = {}
        for rule in rules:
            key = (rule.type, rule.query)
            self.windows[key] = max(self.windows.get(key, 0), rule.expr.window_ns or LOOKBACK_NS)
        self._all_series = store.series.all()
        self._read: dict[tuple[str, str], tuple[dict[int, SeriesInfo], list[int], list[Point]]] = {}

    def points(self, rule: Rule) -> tuple[dict[int, SeriesInfo], list[Point]]:
        """The rule's series, and their rows inside the rule's window, oldest first."""
        key = (rule.type, rule.query)
        if key not in self._read:
            selector = rule.selector
            series = {s.id: s for s in self._all_series if s.kind == rule.type and selector.matches(s.labels)}
            start = self.now_ns - self.windows.get(key, rule.expr.window_ns or LOOKBACK_NS)
            rows = (
                profile_points(self.store.engine, list(series), start, self.now_ns + 1, self.max_points)
                if series
                else []
            )
            self._read[key] = (series, [row[2] for row in rows], rows)
        series, times, rows = self._read[key]
        first = bisect.bisect_left(times, self.now_ns - (rule.expr.window_ns or LOOKBACK_NS))
        return series, rows[first:]


def rule_samples(
    store: Store, rule: Rule, now_ns: int, max_points: int, reader: RoundReader | None = None
) -> list[Sample]:
    if rule.expr.function == "leak_suspect":
        return _leak_samples(store, rule, now_ns)
    series, points = (reader or RoundReader(store, now_ns, max_points, [rule])).points(rule)
    columns: dict[int, int | None] = {}
    cpu_time: dict[int, bool] = {}
    per_series: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for series_id, shape_id, time_ns, duration_ns, totals in points:
        if shape_id not in columns:
            columns[shape_id] = _column(store, shape_id, rule.sample)
            cpu_time[shape_id] = columns[shape_id] == _cpu_time_index(store, shape_id)
        index = columns[shape_id]
        if index is None:
            continue
        value = _total(totals, index)
        if value is None:
            continue
        if rule.type == "cpu":  # per second of profile; CPU nanoseconds per nanosecond are cores
            if duration_ns <= 0:
                continue
            value = value / duration_ns * (1.0 if cpu_time[shape_id] else 1e9)
        per_series[series_id].append((time_ns, value))
    samples: list[Sample] = []
    for series_id, line in per_series.items():
        measured = _measure(rule, line)
        if measured is not None:
            samples.append(Sample(dict(series[series_id].labels), measured))
    return samples


def _total(totals: str | list[int], index: int) -> float | None:
    """One entry of a stored totals list; SQLite hands over the JSON text, which is split rather than parsed."""
    if isinstance(totals, str):
        parts = totals.strip("[] ").split(",")
        return float(parts[index]) if index < len(parts) and parts[index].strip() else None
    return float(totals[index]) if index < len(totals) else None


def _column(store: Store, shape_id: int, sample: str | None) -> int | None:
    shape = store.profiles.shape(shape_id)
    names = [entry.split("/", 1)[0] for entry in shape.sample_types]
    if sample is None:
        sample = shape.default_sample_type if shape.default_sample_type in names else (names[-1] if names else None)
    return names.index(sample) if sample in names else None


def _cpu_time_index(store: Store, shape_id: int) -> int | None:
    """The column holding nanoseconds of CPU time (not sample counts), which becomes seconds per second."""
    for index, entry in enumerate(store.profiles.shape(shape_id).sample_types):
        if entry.endswith("/nanoseconds"):
            return index
    return None


def _measure(rule: Rule, line: list[tuple[int, float]]) -> float | None:
    function = rule.expr.function
    if function == "value":
        return line[-1][1]
    if len(line) < 2:
        return None
    first, last = line[0][1], line[-1][1]
    if function == "increase":
        return last - first
    if function == "increase_pct":
        return None if first == 0 else (last - first) / abs(first) * 100.0
    times = np.array([t for t, _ in line], dtype=np.float64) / 1e9
    values = np.array([v for _, v in line], dtype=np.float64)
    times -= times.mean()
    spread = float((times * times).sum())
    if spread == 0:
        return None
    per_second = float((times * (values - values.mean())).sum()) / spread
    return per_second * rule.expr.per_s


def _leak_samples(store: Store, rule: Rule, now_ns: int) -> list[Sample]:
    """One sample per suspect stack (from the goroutine dumps), labelled with the function its goroutines block in.

    A stack that stops qualifying as a suspect has no value, so its alert resolves.
    """
    samples: list[Sample] = []
    for suspect in find_leak_suspects(store, rule.query, now_ns - rule.expr.window_ns, now_ns):
        samples.append(Sample({**suspect.labels, "function": suspect.function}, float(suspect.growth_per_hour)))
    return samples
