"""Scrape targets: register, list with health, change, pause, remove; capture traces on demand."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import StoreDep, reveals_credentials
from server.errors import InvalidParameter, InvalidTarget, StackyardError
from server.network.policy import NetworkPolicy
from server.network.redact import redact_credentials
from server.scrape.protocol import ScrapeHealth, Scraper
from server.scrape.spec import (
    DELTA_KINDS,
    KIND_INTERVALS_S,
    KINDS,
    OPTIONAL_KINDS,
    TIMED_KINDS,
    ProfileSpec,
    TargetSpec,
    check_target,
    default_profiles,
)
from server.settings import Settings
from server.syntax.times import format_duration, format_time, parse_duration_ns

router = APIRouter(prefix="/api/v1", tags=["targets"])
MAX_TRACE_SECONDS = 60.0


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


def _policy(request: Request) -> NetworkPolicy:
    settings: Settings = request.app.state.settings
    return settings.network_policy()


def _seconds(text: str, field: str) -> float:
    try:
        return parse_duration_ns(text, field) / 1e9
    except InvalidParameter as exc:
        raise InvalidTarget(exc.parameter, exc.message.split(": ", 1)[1]) from None


def _profiles(items: list[str | ProfileIn] | None) -> tuple[ProfileSpec, ...]:
    if items is None:
        return default_profiles()
    specs = [
        ProfileSpec(i)
        if isinstance(i, str)
        else ProfileSpec(i.type, i.enabled, i.path, i.seconds, _seconds(i.interval, "profiles") if i.interval else None)
        for i in items
    ]
    if not specs:
        raise InvalidTarget("profiles", "list at least one profile type")
    return tuple(specs)


def _health_json(health: ScrapeHealth) -> dict[str, Any]:
    return {
        "up": health.up,
        "last_scrape": format_time(health.last_scrape_ns) if health.last_scrape_ns else None,
        "last_duration_ms": health.last_duration_ms,
        "last_error": redact_credentials(health.last_error) if health.last_error else health.last_error,
        "consecutive_failures": health.consecutive_failures,
        "next_scrape": format_time(health.next_scrape_ns) if health.next_scrape_ns else None,
        "not_served": health.not_served,
    }


def target_json(target: TargetSpec, scraper: Scraper | None, reveal: bool = False) -> dict[str, Any]:
    """A target as the API shows it; ``reveal`` keeps a password in its URL (see :func:`reveals_credentials`)."""
    health = {h.kind: _health_json(h) for h in scraper.health(target)} if scraper else {}
    ups = [h["up"] for h in health.values() if h["up"] is not None]
    return {
        "id": target.id,
        "url": target.url if reveal else target.shown_url,
        "service": target.service,
        "labels": target.labels,
        "instance": target.instance,
        "interval": format_duration(target.interval_s),
        "timeout": format_duration(target.timeout_s) if target.timeout_s is not None else None,
        "profiles": [
            {"type": p.kind, "enabled": p.enabled, "path": p.path, "seconds": p.seconds}
            | ({"interval": format_duration(p.interval_s)} if p.interval_s is not None else {})
            for p in target.profiles
        ],
        "path_prefix": target.path_prefix,
        "paused": target.paused,
        "max_response_bytes": target.max_response_bytes,
        "source": target.source,
        "up": (all(ups) if ups else None) if not target.paused else None,
        "health": health,
    }


def _scraper(request: Request) -> Scraper | None:
    scraper: Scraper | None = getattr(request.app.state, "scraper", None)
    return scraper


@router.get("/profile-kinds")
def profile_kinds() -> ProfileKindsOut:
    """Every kind a target can be scraped for: the list the dashboard's forms and the CLI are built from."""
    return ProfileKindsOut(
        kinds=[
            ProfileKindOut(
                name=kind.name,
                path=kind.path,
                description=kind.description,
                default=kind.default,
                delta=kind.name in DELTA_KINDS,
                timed=kind.name in TIMED_KINDS,
                optional=kind.name in OPTIONAL_KINDS,
                interval=format_duration(KIND_INTERVALS_S[kind.name]) if kind.name in KIND_INTERVALS_S else None,
            )
            for kind in KINDS
        ]
    )


@router.post("/targets", status_code=201)
def create_target(body: TargetIn, store: StoreDep, request: Request) -> dict[str, Any]:
    target = check_target(
        TargetSpec(
            url=body.url.strip(),
            service=body.service,
            labels=dict(body.labels),
            interval_s=_seconds(body.interval, "interval"),
            timeout_s=_seconds(body.timeout, "timeout") if body.timeout else None,
            profiles=_profiles(body.profiles),
            path_prefix=body.path_prefix,
            paused=body.paused,
            max_response_bytes=body.max_response_bytes,
        ),
        _policy(request),
    )
    created = store.targets.create(target)
    scraper = _scraper(request)
    if scraper:
        scraper.targets_changed()
    return target_json(created, scraper, reveals_credentials(request))


@router.get("/targets")
def list_targets(store: StoreDep, request: Request) -> dict[str, Any]:
    scraper = _scraper(request)
    targets = store.targets.list()
    if scraper is not None:
        targets += getattr(scraper, "static_targets", list)()
    reveal = reveals_credentials(request)
    return {"targets": [target_json(t, scraper, reveal) for t in targets]}


@router.get("/targets/{target_id}")
def get_target(target_id: int, store: StoreDep, request: Request) -> dict[str, Any]:
    return target_json(store.targets.get(target_id), _scraper(request), reveals_credentials(request))


@router.patch("/targets/{target_id}")
def patch_target(target_id: int, body: TargetPatch, store: StoreDep, request: Request) -> dict[str, Any]:
    current = store.targets.get(target_id)
    changes: dict[str, Any] = {}
    if body.url is not None and body.url.strip() != current.shown_url:  # the redacted URL sent back: unchanged
        changes["url"] = body.url.strip()
    if body.service is not None:
        changes["service"] = body.service
    if body.labels is not None:
        changes["labels"] = dict(body.labels)
    if body.interval is not None:
        changes["interval_s"] = _seconds(body.interval, "interval")
    # These two have a default the target may go back to: an explicit null clears them.
    if "timeout" in body.model_fields_set:
        changes["timeout_s"] = _seconds(body.timeout, "timeout") if body.timeout is not None else None
    if body.profiles is not None:
        changes["profiles"] = _profiles(body.profiles)
    if body.path_prefix is not None:
        changes["path_prefix"] = body.path_prefix
    if body.paused is not None:
        changes["paused"] = body.paused
    if "max_response_bytes" in body.model_fields_set:
        changes["max_response_bytes"] = body.max_response_bytes
    updated = store.targets.replace(check_target(replace(current, **changes), _policy(request)))
    scraper = _scraper(request)
    if scraper:
        scraper.targets_changed()
    return target_json(updated, scraper, reveals_credentials(request))


@router.delete("/targets/{target_id}", status_code=204)
def delete_target(target_id: int, store: StoreDep, request: Request) -> Response:
    store.targets.delete(target_id)
    scraper = _scraper(request)
    if scraper:
        scraper.targets_changed()
    return Response(status_code=204)


class ScraperUnavailable(StackyardError):
    status_code = 503


@router.post("/targets/{target_id}/trace", status_code=201)
async def capture_trace(
    target_id: int,
    store: StoreDep,
    request: Request,
    seconds: Annotated[float, Query(gt=0, le=MAX_TRACE_SECONDS)] = 5.0,
) -> dict[str, Any]:
    target = store.targets.get(target_id)
    scraper = _scraper(request)
    if scraper is None:
        raise ScraperUnavailable("this server runs no scraper; start it with `stackyard serve`")
    data = await scraper.capture_trace(target, seconds)
    trace_id = store.traces.add(target, seconds, data)
    return {
        "id": trace_id,
        "target_id": target_id,
        "seconds": seconds,
        "size": len(data),
        "download": f"/api/v1/traces/{trace_id}",
    }


@router.get("/traces/{trace_id}")
def download_trace(trace_id: int, store: StoreDep) -> Response:
    meta, data = store.traces.get(trace_id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="trace-{meta["id"]}.out"'},
    )
