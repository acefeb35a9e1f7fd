"""Prometheus gauges computed from stored data, so teams can alert on profiles in Prometheus too.

- ``stackyard_goroutines{service,instance}``: goroutines in each instance's
  newest goroutine dump (falling back to the newest ``goroutine`` profile's
  total where no dump is stored);
- ``stackyard_profile_last_total{service,instance,type,sample}``: the totals
  of each series' newest profile, per sample type (``cpu`` nanoseconds,
  ``inuse_space`` bytes, ...), with ``unit`` as a label.
- ``stackyard_stored_ids_highest{kind}``, ``stackyard_stored_rows{kind}`` and
  ``stackyard_stored_ids_limit{kind}``: the highest id each deduplicated kind
  (``function_stacks``, ``functions``, ``sample_keys``, ``line_vectors``) has
  handed out, the rows of it still stored, and the ids it can have. Alert on
  ``highest / limit`` (docs/operations.md): a service whose stacks rarely
  repeat can use the stack tree's in days; a collection renumbering the tree
  brings its highest down to its rows, the others are never renumbered.

Built at scrape time from the database, never kept in memory: another server
replica may have stored the newest profile.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from server.query.dumpviews import goroutine_totals
from server.store.idspace import id_use
from server.store.latest import latest_totals
from server.store.repository import Store


class StoredDataCollector(Collector):
    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        series = {s.id: s for s in self._store.series.all()}
        goroutines = GaugeMetricFamily(
            "stackyard_goroutines",
            "Goroutines in the newest stored dump of each instance",
            labels=["service", "instance"],
        )
        totals = GaugeMetricFamily(
            "stackyard_profile_last_total",
            "Total of the newest stored profile of each series, per sample type",
            labels=["service", "instance", "type", "sample", "unit"],
        )
        counted: set[tuple[str, str]] = set()
        for labels, count in goroutine_totals(self._store):
            key = (labels.get("service", ""), labels.get("instance", ""))
            counted.add(key)
            goroutines.add_metric(list(key), count)
        for latest in latest_totals(self._store.engine):
            info = series.get(latest.series_id)
            if info is None:
                continue
            key = (info.labels.get("service", ""), info.labels.get("instance", ""))
            for entry, total in zip(latest.sample_types, latest.totals, strict=False):
                sample, _, unit = entry.partition("/")
                totals.add_metric([*key, info.kind, sample, unit], total)
            if info.kind == "goroutine" and key not in counted and latest.totals:
                counted.add(key)
                goroutines.add_metric(list(key), latest.totals[0])
        yield goroutines
        yield totals
        yield from _id_use(self._store)


def _id_use(store: Store) -> Iterator[GaugeMetricFamily]:
    highest = GaugeMetricFamily(
        "stackyard_stored_ids_highest", "Highest id each deduplicated kind has handed out", labels=["kind"]
    )
    stored = GaugeMetricFamily("stackyard_stored_rows", "Rows of each deduplicated kind still stored", labels=["kind"])
    limit = GaugeMetricFamily("stackyard_stored_ids_limit", "Ids each deduplicated kind can hand out", labels=["kind"])
    for use in id_use(store.engine):
        highest.add_metric([use.kind], use.highest)
        stored.add_metric([use.kind], use.stored)
        limit.add_metric([use.kind], use.limit)
    yield highest
    yield stored
    yield limit
