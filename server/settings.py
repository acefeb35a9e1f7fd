"""Settings, read once from ``STACKYARD_*`` environment variables (and a config file's ``server:`` block).

Build one :class:`Settings` and pass it down (``create_app(settings)``); nothing
reads the environment at import time, so tests can run many differently
configured servers in one process.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.auth.tokens import TokenEntry
from server.network.policy import DEFAULT_DENY_NETWORKS, NetworkPolicy

DEFAULT_DATABASE_URL = "sqlite:///./data/stackyard.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STACKYARD_", extra="forbid")

    database_url: str = Field(
        DEFAULT_DATABASE_URL, description="SQLAlchemy URL; postgresql+psycopg://... in production"
    )
    host: str = "127.0.0.1"
    port: int = Field(4180, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$")

    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0, description="largest accepted request body")
    max_decompressed_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="largest profile after gunzip, and the memory its decoded form may take"
    )
    max_query_profiles: int = Field(100_000, gt=0, description="raw profiles one query may read")
    max_timeseries_points: int = Field(11_000, gt=0, description="points per trend line, at most")
    max_timeseries_raw_profiles: int = Field(2_000_000, gt=0, description="raw profile rows one trend query may read")
    default_flamegraph_nodes: int = Field(2048, gt=0)
    max_flamegraph_nodes: int = Field(100_000, gt=0)

    rollup_interval: float = Field(60.0, gt=0, description="seconds between rollup builds (hourly, daily)")
    retention_raw: str = Field("7d", description="how long raw profiles are kept")
    retention_hourly: str = Field("90d", description="how long hourly rollups are kept")
    retention_daily: str = Field("365d", description="how long daily rollups are kept")
    retention_interval: float = Field(3600.0, gt=0, description="seconds between retention runs")
    partition_interval: str = Field(
        "1d", description="time partitions on PostgreSQL span this (whole hours); retention drops data in these steps"
    )
    partitions_ahead: int = Field(2, ge=1, le=366, description="partitions created ahead of the current one")

    scrape_sync_interval: float = Field(5.0, gt=0, description="seconds between re-reads of the target list")
    scrape_max_in_flight: int = Field(64, gt=0, description="scrapes running at once, all targets")
    scrape_max_per_host: int = Field(4, gt=0, description="scrapes running at once against one host:port")
    scrape_max_response_bytes: int = Field(64 * 1024 * 1024, gt=0, description="largest accepted scrape response")
    push_buffer_size: int = Field(
        10_000, gt=0, description="profiles a pushing collector holds while the server is away"
    )
    ingest_buffer_size: int = Field(
        10_000, gt=0, description="profiles the in-process collector holds while the database is away"
    )
    database_pool_size: int = Field(
        20, gt=0, description="PostgreSQL connections one server process keeps open (as many again may be borrowed)"
    )
    ingest_concurrency: int = Field(
        4, gt=0, description="pushed profiles one server process decodes and stores at once; more wait their turn"
    )
    ingest_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="worker processes that decode and store pushes (0: threads of the API process)",
    )
    gc_freeze: bool = Field(
        True,
        description="once started, keep start-up objects out of Python's full garbage collections (gc.freeze)",
    )
    gc_full_collection_every: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="a started process's full garbage collection comes after this many of the middle generation "
        "(Python's default: 10): each walks every object the process made since it started",
    )
    database_retry_max_interval: float = Field(
        10.0, gt=0, description="longest wait between retries while the database is away (start, buffered ingest)"
    )
    # Queries on a PostgreSQL hot standby (docs/scaling.md#read-replicas).
    database_read_url: str | None = Field(
        None, description="a hot standby of database_url that queries read from; writes still go to database_url"
    )
    read_max_lag_seconds: float = Field(
        30.0, ge=0, description="a standby further behind the primary than this is skipped: queries go to the primary"
    )
    read_check_interval: float = Field(1.0, gt=0, description="seconds between measurements of the standby's lag")

    # Access control (docs/config.md#access-control).
    auth_tokens: list[TokenEntry] = Field(
        default_factory=list, description='JSON list of {"name", "scopes", "sha256"}; empty: no auth, loopback only'
    )
    auth_cookie_max_age: float = Field(7 * 86400, gt=0, description="seconds the dashboard's login cookie lasts")
    api_token: SecretStr | None = Field(
        None, description="token sent to a remote server (collect, query, targets, ingest)"
    )
    url: str = Field(
        "http://127.0.0.1:4180", description="the server `stackyard targets`, `ingest` and `query` talk to"
    )
    login_max_failures: int = Field(
        10, gt=0, description="failed logins or wrong tokens per client address per window; more: 429"
    )
    login_window: float = Field(60.0, gt=0, description="seconds over which failed authentications are counted")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For and -Proto are believed; "
        "none: no forwarded header is",
    )

    # Safe scraping (docs/config.md#scrape-networks).
    scrape_allow_networks: list[str] = Field(
        default_factory=list, description="if not empty, targets must resolve into one of these networks"
    )
    scrape_deny_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENY_NETWORKS), description="targets resolving here are refused"
    )
    scrape_max_redirects: int = Field(3, ge=0, le=10, description="same-host redirects a scrape follows")

    # Limits that protect the store (docs/config.md#store-limits).
    max_labels_per_series: int = Field(32, gt=0, description="labels of one series, service included")
    max_label_name_length: int = Field(128, gt=0, le=256, description="the store's column holds 256")
    max_label_value_length: int = Field(1024, gt=0)
    max_series_per_service: int = Field(10_000, gt=0, description="series (kind x label set) one service may have")
    max_profile_samples: int = Field(1_000_000, gt=0, description="samples of one profile, after decoding")
    max_profile_locations: int = Field(1_000_000, gt=0, description="locations of one profile, after decoding")
    max_dump_goroutines: int = Field(100_000, gt=0, description="goroutines of one goroutine dump, counted as parsed")
    max_dump_stacks: int = Field(10_000, gt=0, description="distinct stacks of one goroutine dump, counted as parsed")

    # Source text beside line-level numbers (docs/api.md#source).
    source_roots: str = Field(
        "",
        description="where GET /api/v1/source reads source text: comma-separated profile-path-prefix=local-directory"
        " pairs, e.g. 'github.com/acme/shop=/src/shop'; empty: numbers only",
    )

    @field_validator("source_roots")
    @classmethod
    def _source_roots(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            _, sep, directory = entry.partition("=")
            if not sep or not directory.strip():
                raise ValueError(f"source root {entry!r} is not prefix=directory")
        return value

    @field_validator("scrape_allow_networks", "scrape_deny_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(value.strip(), strict=False)) for value in values]

    # Replicas on one PostgreSQL (docs/scaling.md#replicas).
    member_heartbeat_interval: float = Field(
        3.0, gt=0, description="seconds between a replica's heartbeats (PostgreSQL; SQLite has one process)"
    )
    member_timeout: float = Field(
        15.0, gt=0, description="seconds without a heartbeat after which a replica is dead and its targets move"
    )

    @field_validator("member_timeout")
    @classmethod
    def _member_timeout(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("member_heartbeat_interval")
        if heartbeat is not None and value < 2 * heartbeat:
            raise ValueError("must be at least twice member_heartbeat_interval, or one late heartbeat kills a replica")
        return value

    rule_eval_interval: float = Field(15.0, gt=0, description="seconds between evaluations of the alert rules")
    rule_max_points: int = Field(200_000, gt=0, description="raw profile rows one rule evaluation may read")
    alertmanager_url: str | None = Field(None, description="Alertmanager URL; alerts also go to its /api/v2/alerts")
    alertmanager_resend_interval: float = Field(
        60.0, gt=0, description="seconds between re-sends of firing alerts to Alertmanager (it expires silent ones)"
    )
    external_url: str | None = Field(None, description="this server's URL as people reach it, for notification links")
    notify_interval: float = Field(1.0, gt=0, description="seconds between looks at the notification outbox")
    notify_timeout: float = Field(10.0, gt=0, description="seconds one webhook request may take")
    notify_max_attempts: int = Field(10, gt=0, description="tries per notification before it is given up")
    notify_backoff_initial: float = Field(1.0, gt=0, description="seconds before the first retry; doubles per try")
    notify_backoff_max: float = Field(300.0, gt=0, description="longest wait between two tries")
    notify_proxy: str | None = Field(
        None, description="HTTP proxy for webhooks and Alertmanager; none: direct, through the network policy"
    )

    @field_validator("retention_raw", "retention_hourly", "retention_daily")
    @classmethod
    def _duration(cls, value: str) -> str:
        from server.syntax.times import parse_duration_ns

        if parse_duration_ns(value, "retention") < 3600 * 10**9:
            raise ValueError("retention must be at least 1h")
        return value

    @field_validator("partition_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        from server.syntax.times import parse_duration_ns

        interval = parse_duration_ns(value, "partition_interval")
        if interval < 3600 * 10**9 or interval % (3600 * 10**9):
            raise ValueError("a partition interval is a whole number of hours (1h, 6h, 1d, 7d)")
        return value

    @field_validator("alertmanager_url", "external_url", "notify_proxy", "url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value

    @field_validator("database_read_url")
    @classmethod
    def _standby(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.startswith("postgresql"):
            raise ValueError("a read replica is a PostgreSQL hot standby: a postgresql+psycopg:// URL")
        if not str(info.data.get("database_url", "")).startswith("postgresql"):
            raise ValueError("a read replica needs a PostgreSQL database_url (its primary)")
        return value

    @field_validator("alertmanager_url")
    @classmethod
    def _alertmanager_allowed(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An address the network policy refuses stops the start, as a webhook's would (names: at connect time)."""
        host = urlsplit(value).hostname if value else None
        if host and "scrape_deny_networks" in info.data and "scrape_allow_networks" in info.data:
            policy = NetworkPolicy(info.data["scrape_allow_networks"], info.data["scrape_deny_networks"])
            refusal = policy.literal_refusal(host)
            if refusal is not None:
                raise ValueError(f"refused: {refusal}")
        return value

    def network_policy(self) -> NetworkPolicy:
        return NetworkPolicy(self.scrape_allow_networks, self.scrape_deny_networks)

    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite URL, so the CLI can create its folder."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None
