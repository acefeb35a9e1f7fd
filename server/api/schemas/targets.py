"""Scrape targets: what a client sends to register or change one, and how a target and its health are shown."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from server.api.schemas import Number
from server.network.redact import redact_credentials
from server.scrape.protocol import ScrapeHealth
from server.scrape.spec import ProfileSpec, TargetSpec
from server.syntax.times import format_duration, format_time


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    enabled: bool = True
    path: str | None = None
    seconds: float | None = Field(default=None, gt=0, le=3600)
    interval: str | None = None  # this kind's own interval; goroutine_dump defaults to 1m


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    service: str
    labels: dict[str, str] = {}
    interval: str = "15s"
    timeout: str | None = None
    profiles: list[str | ProfileIn] | None = None
    path_prefix: str = "/debug/pprof"
    paused: bool = False
    max_response_bytes: int | None = None


class TargetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    service: str | None = None
    labels: dict[str, str] | None = None
    interval: str | None = None
    timeout: str | None = None
    profiles: list[str | ProfileIn] | None = None
    path_prefix: str | None = None
    paused: bool | None = None
    max_response_bytes: int | None = None


class ProfileKindOut(BaseModel):
    """A kind of endpoint a target can be scraped for."""

    name: str
    path: str = Field(description="under the target's path_prefix")
    description: str
    default: bool = Field(description="scraped when a target names no profiles")
    delta: bool = Field(description="cumulative in Go: scraped as a delta over each interval")
    timed: bool = Field(description="asked for ?seconds= of wall time")
    optional: bool = Field(description="many Go versions do not serve it: a 404 is not an error")
    interval: str | None = Field(description="its own default interval, whatever the target's")


class ProfileKindsOut(BaseModel):
    kinds: list[ProfileKindOut]


class ScrapeHealthOut(BaseModel):
    """One profile kind's scrape health."""

    up: bool | None = Field(description="null: not scraped yet")
    last_scrape: str | None
    last_duration_ms: Number | None
    last_error: str | None = Field(description="in words, with the URL fetched (passwords redacted)")
    consecutive_failures: int
    next_scrape: str | None
    not_served: bool = Field(description="an optional kind this target's Go version does not serve")

    @classmethod
    def of(cls, health: ScrapeHealth) -> ScrapeHealthOut:
        return cls(
            up=health.up,
            last_scrape=format_time(health.last_scrape_ns) if health.last_scrape_ns else None,
            last_duration_ms=health.last_duration_ms,
            last_error=redact_credentials(health.last_error) if health.last_error else health.last_error,
            consecutive_failures=health.consecutive_failures,
            next_scrape=format_time(health.next_scrape_ns) if health.next_scrape_ns else None,
            not_served=health.not_served,
        )


class TargetProfileOut(BaseModel):
    """One endpoint of a target; ``interval`` only when the kind has its own (absent otherwise)."""

    type: str
    enabled: bool
    path: str | None
    seconds: Number | None
    interval: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @classmethod
    def of(cls, profile: ProfileSpec) -> TargetProfileOut:
        interval = format_duration(profile.interval_s) if profile.interval_s is not None else None
        return cls(
            type=profile.kind, enabled=profile.enabled, path=profile.path, seconds=profile.seconds, interval=interval
        )


class TargetOut(BaseModel):
    """A target as the API shows it, with the health of each kind it scrapes."""

    id: int | None = Field(description="null for targets of the config file")
    url: str = Field(description="a password in it is redacted for readers who may not use it")
    service: str
    labels: dict[str, str]
    instance: str
    interval: str
    timeout: str | None
    profiles: list[TargetProfileOut]
    path_prefix: str
    paused: bool
    max_response_bytes: int | None
    source: str = Field(description="api or config")
    up: bool | None = Field(description="every kind up; null when paused or not scraped yet")
    health: dict[str, ScrapeHealthOut] = Field(description="per profile kind")
    owner: str | None = Field(
        default=None,
        description="member id of the replica whose share it is (as in /metrics' stackyard_replica_info); "
        "null on SQLite, with one replica, or when paused",
    )

    @classmethod
    def of(
        cls, target: TargetSpec, health: list[ScrapeHealth], reveal: bool = False, owner: str | None = None
    ) -> TargetOut:
        """``reveal`` keeps a password in the URL (see :func:`server.api.deps.reveals_credentials`)."""
        shown = {h.kind: ScrapeHealthOut.of(h) for h in health}
        ups = [h.up for h in shown.values() if h.up is not None]
        return cls(
            id=target.id,
            url=target.url if reveal else target.shown_url,
            service=target.service,
            labels=target.labels,
            instance=target.instance,
            interval=format_duration(target.interval_s),
            timeout=format_duration(target.timeout_s) if target.timeout_s is not None else None,
            profiles=[TargetProfileOut.of(p) for p in target.profiles],
            path_prefix=target.path_prefix,
            paused=target.paused,
            max_response_bytes=target.max_response_bytes,
            source=target.source,
            up=(all(ups) if ups else None) if not target.paused else None,
            health=shown,
            owner=owner,
        )


class TargetsOut(BaseModel):
    targets: list[TargetOut]


class TraceOut(BaseModel):
    """A captured execution trace, stored; ``download`` is where to fetch it."""

    id: int
    target_id: int
    seconds: float
    size: int = Field(description="bytes")
    download: str
