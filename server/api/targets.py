"""Scrape targets: register, list with health, change, pause, remove; capture traces on demand."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from server.api.deps import RevealDep, ScraperDep, SettingsDep, StoreDep
from server.api.schemas.files import TRACE_FILE
from server.api.schemas.targets import (
    ProfileIn,
    ProfileKindOut,
    ProfileKindsOut,
    TargetIn,
    TargetOut,
    TargetPatch,
    TargetsOut,
    TraceOut,
)
from server.errors import InvalidParameter, InvalidTarget, StackyardError
from server.scrape.protocol import Scraper
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
from server.syntax.times import format_duration, parse_duration_ns

router = APIRouter(prefix="/api/v1", tags=["targets"])
MAX_TRACE_SECONDS = 60.0


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


def _shown(target: TargetSpec, scraper: Scraper | None, reveal: bool) -> TargetOut:
    owner = getattr(scraper, "owner", None)  # replicas sharing the targets only
    return TargetOut.of(target, scraper.health(target) if scraper else [], reveal, owner(target) if owner else None)


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
def create_target(
    body: TargetIn, store: StoreDep, settings: SettingsDep, scraper: ScraperDep, reveal: RevealDep
) -> TargetOut:
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
        settings.network_policy(),
    )
    created = store.targets.create(target)
    if scraper:
        scraper.targets_changed()
    return _shown(created, scraper, reveal)


@router.get("/targets")
def list_targets(store: StoreDep, scraper: ScraperDep, reveal: RevealDep) -> TargetsOut:
    targets = store.targets.list()
    if scraper is not None:
        targets += getattr(scraper, "static_targets", list)()
    return TargetsOut(targets=[_shown(t, scraper, reveal) for t in targets])


@router.get("/targets/{target_id}")
def get_target(target_id: int, store: StoreDep, scraper: ScraperDep, reveal: RevealDep) -> TargetOut:
    return _shown(store.targets.get(target_id), scraper, reveal)


@router.patch("/targets/{target_id}")
def patch_target(
    target_id: int, body: TargetPatch, store: StoreDep, settings: SettingsDep, scraper: ScraperDep, reveal: RevealDep
) -> TargetOut:
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
    updated = store.targets.replace(check_target(replace(current, **changes), settings.network_policy()))
    if scraper:
        scraper.targets_changed()
    return _shown(updated, scraper, reveal)


@router.delete("/targets/{target_id}", status_code=204)
def delete_target(target_id: int, store: StoreDep, scraper: ScraperDep) -> Response:
    store.targets.delete(target_id)
    if scraper:
        scraper.targets_changed()
    return Response(status_code=204)


class ScraperUnavailable(StackyardError):
    status_code = 503


@router.post("/targets/{target_id}/trace", status_code=201)
async def capture_trace(
    target_id: int,
    store: StoreDep,
    scraper: ScraperDep,
    seconds: Annotated[float, Query(gt=0, le=MAX_TRACE_SECONDS)] = 5.0,
) -> TraceOut:
    target = store.targets.get(target_id)
    if scraper is None:
        raise ScraperUnavailable("this server runs no scraper; start it with `stackyard serve`")
    data = await scraper.capture_trace(target, seconds)
    trace_id = store.traces.add(target, seconds, data)
    return TraceOut(
        id=trace_id, target_id=target_id, seconds=seconds, size=len(data), download=f"/api/v1/traces/{trace_id}"
    )


@router.get("/traces/{trace_id}", response_class=Response, responses=TRACE_FILE)
def download_trace(trace_id: int, store: StoreDep) -> Response:
    meta, data = store.traces.get(trace_id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="trace-{meta["id"]}.out"'},
    )
