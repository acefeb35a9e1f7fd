"""Label discovery for selectors and autocomplete: series labels, and pprof sample labels marked as such.

Series labels (``service``, ``instance``, target labels) live on the series
rows. Sample labels (``pprof.Do``, such as ``handler="/checkout"``) live in the
samples, so they are found in the profiles the selector and time range pick:
never more than :data:`MAX_PARTS` profiles or rollups, spread over the range,
so autocomplete stays cheap on a fleet's week. A label set is usually the same
in every profile of a service, so a sample of the range finds what there is.

A name is a sample label only where no series of the kind carries it: that is
how queries read a matcher too (:meth:`Selector.split`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from server.errors import TooExpensive
from server.query.plan import plan
from server.query.selector import Selector
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.store.series import SeriesInfo

#: Profiles (or rollups) read to find sample labels, at most.
MAX_PARTS = 64
#: When the whole range holds more profiles than a query may read, look at its last hour only.
FALLBACK_NS = 3600 * 10**9


@dataclass(slots=True)
class Found:
    series: dict[str, set[str]] = field(default_factory=dict)
    samples: dict[str, set[str]] = field(default_factory=dict)


def _of_kind(store: Store, kind: str | None) -> list[SeriesInfo]:
    return [s for s in store.series.all() if kind in (None, s.kind)]


def _spread(parts: list[ProfileMeta], count: int) -> list[ProfileMeta]:
    """At most ``count`` parts, evenly spaced over the list (its newest always among them)."""
    if len(parts) <= count:
        return parts
    picks = np.linspace(0, len(parts) - 1, count).round().astype(int)
    return [parts[i] for i in sorted(set(picks.tolist()))]


def _parts(store: Store, series: list[int], start_ns: int, end_ns: int, limit: int) -> list[ProfileMeta]:
    try:
        return plan(store, series, start_ns, end_ns, limit)
    except TooExpensive:
        try:
            return plan(store, series, max(start_ns, end_ns - FALLBACK_NS), end_ns, limit)
        except TooExpensive:
            return []


def sample_labels(
    store: Store, series: list[SeriesInfo], on_samples: Selector, start_ns: int, end_ns: int, limit: int
) -> dict[str, set[str]]:
    """Sample label names and values in the series' profiles of ``[start_ns, end_ns]`` that ``on_samples`` keeps."""
    parts = _spread(_parts(store, [s.id for s in series], start_ns, end_ns + 1, limit), MAX_PARTS)
    keys = [arrays.keys for _, arrays in store.read_samples(parts)]
    if not keys:
        return {}
    _, labelsets = store.sample_identities(np.unique(np.concatenate(keys)))
    found: dict[str, set[str]] = {}
    for labels, _numeric in store.label_sets(np.unique(labelsets).tolist()).values():
        if labels and on_samples.matches(dict(labels)):
            for name, value in labels:
                found.setdefault(name, set()).add(value)
    return found


def discover(
    store: Store, kind: str | None, selector: Selector | None, start_ns: int, end_ns: int, limit: int
) -> Found:
    """Every label name and value the selector's series and their samples in the range have."""
    of_kind = _of_kind(store, kind)
    series_names = {name for s in of_kind for name in s.labels}
    on_series, on_samples = (selector or Selector()).split(series_names)
    matched = [s for s in of_kind if on_series.matches(s.labels)]
    found = Found()
    for s in matched:
        for name, value in s.labels.items():
            found.series.setdefault(name, set()).add(value)
    samples = sample_labels(store, matched, on_samples, start_ns, end_ns, limit)
    found.samples = {name: values for name, values in samples.items() if name not in series_names}
    return found


def label_names(
    store: Store, kind: str | None, selector: Selector | None, start_ns: int, end_ns: int, limit: int
) -> tuple[list[str], list[str]]:
    """Every label name, and those among them that are pprof sample labels (not on any series)."""
    found = discover(store, kind, selector, start_ns, end_ns, limit)
    return sorted(set(found.series) | set(found.samples)), sorted(found.samples)


def label_values(
    store: Store, name: str, kind: str | None, selector: Selector | None, start_ns: int, end_ns: int, limit: int
) -> tuple[list[str], bool]:
    """The values of ``name`` and whether it is a sample label."""
    of_kind = _of_kind(store, kind)
    series_names = {n for s in of_kind for n in s.labels}
    if name in series_names:
        on_series, _ = (selector or Selector()).split(series_names)
        values = {s.labels[name] for s in of_kind if name in s.labels and on_series.matches(s.labels)}
        return sorted(values), False
    found = discover(store, kind, selector, start_ns, end_ns, limit)
    return sorted(found.samples.get(name, set())), True
