"""Wiring of ``stackyard serve``: API, dashboard, store, upkeep, and a collector storing through ingest.

The scrape parts it shares with ``stackyard collect`` are in :mod:`stackyard.collecting`; the sink that
joins the collector to this process's ingest path is :mod:`stackyard.ingestsink`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from collector.manager import ScrapeManager
from collector.metrics import CollectorMetrics
from server.alerts.service import Alerting
from server.app import Hook, create_app
from server.config.load import load_config
from server.errors import DatabaseUnavailable
from server.ingest.storelimits import decode_limits, limit_rejections
from server.ingest.workers import IngestWorkers
from server.migrate import upgrade
from server.replicas.membership import Membership, ReplicaCollector, Solo
from server.scrape.spec import TargetSpec
from server.settings import Settings
from server.store.availability import DatabaseGate, describe, is_unavailable
from server.store.repository import Store
from server.store.scrapehealth import ScrapeHealthTable
from server.upkeep.jobs import Maintenance
from stackyard.collecting import TargetSource, checks_for, config_sources, fetcher_for
from stackyard.ingestsink import InProcessSink, scraped_ingest
from stackyard.sharedhealth import SharedHealth


def stored_targets(store: Store) -> TargetSource:
    """The targets registered through the API; a database outage becomes :class:`DatabaseUnavailable`.

    The collector knows no database errors: it logs an outage of a target source (one line, saying why)
    apart from a bug (a traceback), by this error's type.
    """

    def read() -> list[TargetSpec]:
        try:
            return store.targets.list()
        except Exception as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable(describe(exc)) from exc
            raise

    return read


def build_server(settings: Settings, config_path: Path | None = None) -> FastAPI:
    """The API, the dashboard, an in-process scrape manager and the upkeep jobs, sharing one store.

    The schema is migrated at start by a :class:`DatabaseGate`: if the
    database is not there yet, the server starts anyway, answers 503 and
    reports not-ready until the migration has run.
    """
    config = load_config(config_path, settings.network_policy()) if config_path else None
    if config is not None and config.auth_tokens:
        settings = settings.model_copy(update={"auth_tokens": [*settings.auth_tokens, *config.auth_tokens]})
    store = Store.from_url(
        settings.database_url,
        settings.database_pool_size,
        settings.database_read_url,
        settings.read_max_lag_seconds,
        settings.read_check_interval,
    )
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry)
    gate = DatabaseGate(lambda: upgrade(settings.database_url), settings.database_retry_max_interval)
    workers = IngestWorkers(settings, settings.ingest_processes) if settings.ingest_processes else None

    # Replicas on one PostgreSQL share the targets and elect one upkeep leader; SQLite has one process.
    replicas: Solo | Membership = Solo()
    if not settings.database_url.startswith("sqlite"):
        replicas = Membership.for_settings(settings, lambda: gate.ready)
    registry.register(ReplicaCollector(replicas))

    manager = ScrapeManager(
        [stored_targets(store), *config_sources(config)],
        InProcessSink(
            scraped_ingest(store, settings, limit_rejections(registry), gate, workers),
            metrics,
            settings.ingest_buffer_size,
            checks_for(settings),
            settings.database_retry_max_interval,
        ),
        fetcher_for(settings),
        metrics,
        sync_interval_s=settings.scrape_sync_interval,
        max_decompressed=settings.max_decompressed_bytes,
        decode_limits=decode_limits(settings),
        owns=None if isinstance(replicas, Solo) else replicas.owns,
    )
    scraper: ScrapeManager | SharedHealth = manager
    # Membership starts first (a replica scrapes nothing until it has joined) and leaves after the
    # scraper has stopped, so the others take its targets only once it scrapes no more.
    starts: list[Hook] = [gate.start, replicas.start, manager.start]
    stops: list[Hook] = [gate.stop, manager.stop, replicas.stop]
    if isinstance(replicas, Membership):
        replicas.on_change(manager.targets_changed)  # a member joined or left: divide the targets again
        # Each replica shows every target's health: its own share's from memory, the others' as they publish it.
        shared = SharedHealth(
            manager,
            ScrapeHealthTable(store.engine),
            replicas.id,
            settings.scrape_sync_interval,
            lambda: gate.ready,
            replicas.members,
        )
        scraper = shared
        starts.append(shared.start)
        stops.insert(0, shared.stop)

    # Rollups after each bucket closes, retention; on the leading replica only.
    upkeep = Maintenance(store, settings, lambda: gate.ready, replicas.leading)
    rules, receivers = (config.rules, config.receivers) if config else ((), ())
    alerting = Alerting(store, settings, rules, receivers, replicas.leading)

    async def close_store() -> None:
        store.close()

    app = create_app(
        settings,
        store,
        scraper=scraper,
        metrics_registry=registry,
        on_start=[*starts, upkeep.start, alerting.start],
        on_stop=[alerting.stop, upkeep.stop, *stops, close_store],
        alerting=alerting,
        ingest_workers=workers,
    )
    app.state.database_gate = gate
    return app
