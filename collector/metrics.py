"""The collector's Prometheus metrics, registered in the registry the process exposes at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.scrape_duration = Histogram(
            "stackyard_scrape_duration_seconds",
            "Time to fetch one profile from a target, CPU profiling seconds included.",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
            registry=registry,
        )
        self.scrapes = Counter(
            "stackyard_scrapes_total", "Scrapes by profile kind and result.", ["kind", "result"], registry=registry
        )
        self.target_up = Gauge(
            "stackyard_target_up", "1 if the last scrape succeeded.", ["service", "instance", "kind"], registry=registry
        )
        self.schedule_lag = Histogram(
            "stackyard_scrape_lag_seconds",
            "How late a scrape started relative to its slot in the interval.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.skipped = Counter(
            "stackyard_scrapes_skipped",
            "Scheduled scrapes that did not run because the previous one of the job was still running or late.",
            registry=registry,
        )
        self.sink_sent = Counter(
            "stackyard_sink_sent_total", "Profiles pushed to the server (or stored, in-process).", registry=registry
        )
        self.sink_rejected = Counter(
            "stackyard_sink_rejected_total",
            "Profiles the server refused (4xx), or in-process ingest refused after buffering.",
            registry=registry,
        )
        self.sink_set_aside = Counter(
            "stackyard_sink_set_aside_total",
            "Profiles a pushing collector gave up on after repeated server errors (5xx) that the rest did not meet.",
            registry=registry,
        )
        self.sink_dropped = Counter(
            "stackyard_sink_dropped_total", "Profiles dropped because the buffer was full.", registry=registry
        )
        self.sink_buffered = Gauge(
            "stackyard_sink_buffered", "Profiles waiting for the server (or database).", registry=registry
        )
        self.targets = Gauge("stackyard_targets", "Targets scheduled by this process.", registry=registry)
