"""Prometheus metrics of the read replica: is the standby serving queries, how far behind it is, who served.

Read from the replica's last check, in memory: a scrape of ``/metrics`` never
waits on either database for them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.store.replica import PRIMARY, STANDBY, ReadReplica


class ReplicaCollector(Collector):
    def __init__(self, replica: ReadReplica) -> None:
        self._replica = replica

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        status = self._replica.status
        yield GaugeMetricFamily(
            "stackyard_read_replica_up", "Whether the standby answered its last check", value=int(status.reachable)
        )
        yield GaugeMetricFamily(
            "stackyard_read_replica_lag_seconds",
            "How far the standby's replay is behind the primary (NaN while unknown)",
            value=status.lag_s,
        )
        yield GaugeMetricFamily(
            "stackyard_read_replica_serving",
            "Whether queries go to the standby (0: to the primary, because it is down or too far behind)",
            value=int(status.serving),
        )
        yield GaugeMetricFamily(
            "stackyard_read_replica_max_lag_seconds",
            "The lag past which the standby is skipped (STACKYARD_READ_MAX_LAG_SECONDS)",
            value=self._replica.max_lag_s,
        )
        served = CounterMetricFamily(
            "stackyard_read_connections",
            "Database connections handed to queries, by the server they went to",
            labels=["server"],
        )
        for server in (STANDBY, PRIMARY):
            served.add_metric([server], self._replica.served[server])
        yield served
