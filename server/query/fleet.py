"""The fleet at a glance: one row per (service, instance) with its status, labels and newest goroutine count.

The overview page lists a thousand instances; building that from the targets
list (every target's health per kind), the series list and a goroutine trend
per instance costs megabytes and seconds. This joins the same facts once, on
the server: scrape targets with their health (from the scraper, in memory),
services that only push (from the stored series, cached), and each instance's
newest ``goroutine`` total (one index lookup per series, ``newest_of``).

An instance's status follows its targets: ``down`` when any active target has
a kind whose last scrape failed, ``up`` when every active target is up,
``paused`` when all are paused, ``waiting`` before the first scrape, ``push``
when no target scrapes it (its profiles are pushed).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from server.scrape.protocol import ScrapeHealth, Scraper
from server.scrape.spec import TargetSpec
from server.store.latest import newest_of
from server.store.repository import Store
from server.store.series import SeriesInfo

Status = Literal["down", "waiting", "up", "paused", "push"]
#: The order the overview lists instances in: what needs attention first.
STATUS_ORDER: tuple[Status, ...] = ("down", "waiting", "up", "paused", "push")
GOROUTINE_KIND = "goroutine"


@dataclass
class Instance:
    service: str
    instance: str
    labels: dict[str, str] = field(default_factory=dict)
    targets: list[TargetSpec] = field(default_factory=list)
    health: list[list[ScrapeHealth]] = field(default_factory=list)  # per target
    series: list[SeriesInfo] = field(default_factory=list)
    goroutines: int | None = None
    goroutines_ns: int | None = None
    last_profile_ns: int | None = None

    @functools.cached_property
    def status(self) -> Status:
        """Computed once, when every target and series is in (the sort, the counts and the answer ask)."""
        if not self.targets:
            return "push"
        active = [health for target, health in zip(self.targets, self.health, strict=True) if not target.paused]
        if not active:
            return "paused"
        # A target is up when every kind scraped so far is (kinds never scraped, such as a goroutineleak
        # the Go version does not serve, do not hold it back): as GET /api/v1/targets says.
        ups = [[h.up for h in kinds if h.up is not None] for kinds in active]
        if any(False in target_ups for target_ups in ups):
            return "down"
        if all(target_ups for target_ups in ups):
            return "up"
        return "waiting"

    @property
    def last_scrape_ns(self) -> int | None:
        times = [h.last_scrape_ns for kinds in self.health for h in kinds if h.last_scrape_ns]
        return max(times) if times else None

    @property
    def errors(self) -> list[str]:
        """Failed kinds in words: ``heap: connection refused (3 failures in a row)``."""
        out = []
        for kinds in self.health:
            for h in kinds:
                if h.up is False and h.last_error:
                    times = f" ({h.consecutive_failures} failures in a row)" if h.consecutive_failures > 1 else ""
                    out.append(f"{h.kind}: {h.last_error}{times}")
        return out

    @property
    def kinds(self) -> list[str]:
        """Profile kinds scraped (enabled on a target) or stored for this instance."""
        scraped = {p.kind for t in self.targets for p in t.enabled_profiles()}
        return sorted(scraped | {s.kind for s in self.series})


def fleet(store: Store, targets: Sequence[TargetSpec], scraper: Scraper | None) -> list[Instance]:
    """Every instance the server scrapes or has profiles of, down ones first, then by service and instance."""
    instances: dict[tuple[str, str], Instance] = {}

    def entry(service: str, instance: str) -> Instance:
        key = (service, instance)
        if key not in instances:
            instances[key] = Instance(service, instance)
        return instances[key]

    for target in targets:
        labels = target.series_labels()
        item = entry(target.service, labels["instance"])
        item.targets.append(target)
        item.health.append(scraper.health(target) if scraper is not None else [])
        for name, value in labels.items():
            item.labels.setdefault(name, value)
    for info in sorted(store.series.all(), key=lambda s: -s.id):  # newest series first: their labels win
        item = entry(info.labels.get("service", ""), info.labels.get("instance", ""))
        item.series.append(info)
        for name, value in info.labels.items():
            item.labels.setdefault(name, value)
    _newest(store, instances.values())
    return sorted(instances.values(), key=lambda i: (STATUS_ORDER.index(i.status), i.service, i.instance))


def _newest(store: Store, instances: Iterable[Instance]) -> None:
    """Each instance's newest goroutine total; for instances that only push, their newest profile's time."""
    owner: dict[int, tuple[Instance, SeriesInfo]] = {}
    for item in instances:
        for info in item.series:
            if info.kind == GOROUTINE_KIND or not item.targets:
                owner[info.id] = (item, info)
    for latest in newest_of(store.engine, list(owner)):
        item, info = owner[latest.series_id]
        if not item.targets and (item.last_profile_ns is None or latest.time_ns > item.last_profile_ns):
            item.last_profile_ns = latest.time_ns
        newer = item.goroutines_ns is None or latest.time_ns > item.goroutines_ns
        if info.kind == GOROUTINE_KIND and latest.totals and newer:
            item.goroutines, item.goroutines_ns = latest.totals[0], latest.time_ns
