"""``GET /api/v1/fleet``: every instance's status in one request, for the overview page."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from server.api.deps import StoreDep
from server.query.fleet import STATUS_ORDER, Status, fleet
from server.scrape.protocol import Scraper
from server.syntax.times import format_time

router = APIRouter(prefix="/api/v1", tags=["fleet"])


def _time(ns: int | None) -> str | None:
    return format_time(ns) if ns else None


class FleetInstanceOut(BaseModel):
    service: str
    instance: str
    status: Status = Field(description="down, waiting (not scraped yet), up, paused, or push (no scrape target)")
    labels: dict[str, str] = Field(description="the labels of its targets and stored series, service and instance too")
    targets: list[int | None] = Field(description="ids of its scrape targets (null: from the config file)")
    kinds: list[str] = Field(description="profile kinds scraped or stored")
    last_scrape: str | None = Field(description="newest scrape of any of its targets")
    last_profile: str | None = Field(description="newest stored profile, for instances that only push")
    errors: list[str] = Field(description="failing kinds in words: 'heap: connection refused (3 failures in a row)'")
    goroutines: int | None = Field(description="goroutines in its newest stored goroutine profile")
    goroutines_at: str | None


class FleetOut(BaseModel):
    instances: list[FleetInstanceOut] = Field(description="down first, then by service and instance")
    services: int
    statuses: dict[str, int] = Field(description="instances per status")


@router.get("/fleet", response_model=FleetOut)
def get_fleet(store: StoreDep, request: Request) -> Response:
    """Every instance the server scrapes or holds profiles of, with its status: the overview in one request.

    The model is built (and so checked) once and written by pydantic's own serializer: a thousand rows
    through FastAPI's generic response path cost the overview twice the time.
    """
    scraper: Scraper | None = getattr(request.app.state, "scraper", None)
    targets = store.targets.list()
    if scraper is not None:
        targets += getattr(scraper, "static_targets", list)()
    instances = fleet(store, targets, scraper)
    counts = Counter(i.status for i in instances)
    answer = FleetOut(
        instances=[
            FleetInstanceOut(
                service=i.service,
                instance=i.instance,
                status=i.status,
                labels=i.labels,
                targets=[t.id for t in i.targets],
                kinds=i.kinds,
                last_scrape=_time(i.last_scrape_ns),
                last_profile=_time(i.last_profile_ns),
                errors=i.errors,
                goroutines=i.goroutines,
                goroutines_at=_time(i.goroutines_ns),
            )
            for i in instances
        ],
        services=len({i.service for i in instances}),
        statuses={status: counts.get(status, 0) for status in STATUS_ORDER},
    )
    return Response(answer.model_dump_json(), media_type="application/json")
