"""Wiring of ``stackyard collect``, and the scrape parts ``serve``'s own collector shares with it.

Nothing here opens a database: a scrape-only process loads no SQLAlchemy and no
store, API or ingest module (``tests/project/test_layers.py`` checks it), and
takes its targets from the config file and the remote server's API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from collector.fetch import Fetcher, FetchLimits
from collector.manager import ScrapeManager, Shard
from collector.metrics import CollectorMetrics
from collector.sinks import Checks, HttpPushSink, Sink
from server.auth.tokens import bearer_header
from server.config.filesd import FileSDWatcher
from server.config.load import Config, load_config
from server.ingest.storelimits import decode_limits
from server.scrape.spec import ProfileSpec, TargetSpec
from server.settings import Settings
from server.syntax.times import parse_duration_ns

TargetSource = Callable[[], Iterable[TargetSpec]]


def config_sources(config: Config | None) -> list[TargetSource]:
    """Static targets, and one source per file_sd block that re-reads its files when they change."""
    if config is None:
        return []
    sources: list[TargetSource] = [lambda: list(config.targets)]
    for file_sd in config.file_sd:
        sources.append(_RefreshingFileSD(FileSDWatcher(file_sd), file_sd.refresh_interval_s))
    return sources


class _RefreshingFileSD:
    """A file_sd source that looks at its files at most once per ``refresh_interval``."""

    def __init__(self, watcher: FileSDWatcher, refresh_interval_s: float) -> None:
        self._watcher = watcher
        self._refresh_s = refresh_interval_s
        self._next = 0.0

    def __call__(self) -> list[TargetSpec]:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._refresh_s
            self._watcher.poll()
        return self._watcher.targets()


def fetcher_for(settings: Settings) -> Fetcher:
    return Fetcher(
        FetchLimits(
            max_in_flight=settings.scrape_max_in_flight,
            max_per_host=settings.scrape_max_per_host,
            max_response_bytes=settings.scrape_max_response_bytes,
            max_redirects=settings.scrape_max_redirects,
        ),
        policy=settings.network_policy(),
    )


def checks_for(settings: Settings) -> Checks:
    """What a sink checks scraped profiles and dumps against: the limits the server applies."""
    return Checks(
        settings.max_decompressed_bytes, decode_limits(settings), settings.max_dump_goroutines, settings.max_dump_stacks
    )


def remote_targets(push_url: str, headers: dict[str, str] | None = None) -> TargetSource:
    """Targets registered on the remote server (through its API), for a pushing collector."""
    url = push_url.rstrip("/") + "/api/v1/targets"

    def fetch() -> list[TargetSpec]:
        response = httpx.get(url, timeout=10, headers=headers)
        response.raise_for_status()
        return [_target_from_json(item) for item in response.json()["targets"] if item.get("source") == "api"]

    return fetch


class _RemoteProfile(BaseModel):
    type: str
    enabled: bool = True
    path: str | None = None
    seconds: float | None = None
    interval: str | None = None


class _RemoteTarget(BaseModel):
    """The subset of ``GET /api/v1/targets`` items a collector needs (see server/api/targets.py)."""

    id: int | None = None
    url: str
    service: str
    labels: dict[str, str] = {}
    interval: str
    timeout: str | None = None
    profiles: list[_RemoteProfile] = []
    path_prefix: str = "/debug/pprof"
    paused: bool = False
    max_response_bytes: int | None = None


def _target_from_json(item: dict[str, object]) -> TargetSpec:
    remote = _RemoteTarget.model_validate(item)
    return TargetSpec(
        url=remote.url,
        service=remote.service,
        labels=remote.labels,
        interval_s=parse_duration_ns(remote.interval) / 1e9,
        timeout_s=parse_duration_ns(remote.timeout) / 1e9 if remote.timeout else None,
        profiles=tuple(
            ProfileSpec(
                p.type, p.enabled, p.path, p.seconds, parse_duration_ns(p.interval) / 1e9 if p.interval else None
            )
            for p in remote.profiles
        ),
        path_prefix=remote.path_prefix,
        paused=remote.paused,
        id=remote.id,
        source="api",
        max_response_bytes=remote.max_response_bytes,
    )


def build_collector(
    settings: Settings, push_url: str, shard: Shard, config_path: Path | None = None
) -> tuple[ScrapeManager, CollectorRegistry]:
    """A scrape-only process: targets from the config file and the remote server, profiles pushed there."""
    config = load_config(config_path, settings.network_policy()) if config_path else None
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry)
    headers = bearer_header(settings.api_token)
    sink: Sink = HttpPushSink(push_url, metrics, settings.push_buffer_size, checks_for(settings), headers=headers)
    manager = ScrapeManager(
        [remote_targets(push_url, headers), *config_sources(config)],
        sink,
        fetcher_for(settings),
        metrics,
        shard=shard,
        sync_interval_s=settings.scrape_sync_interval,
        max_decompressed=settings.max_decompressed_bytes,
        decode_limits=decode_limits(settings),
    )
    return manager, registry
