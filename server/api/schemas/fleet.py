"""The answer of ``GET /api/v1/fleet``: every instance's status, for the overview page."""

from __future__ import annotations

from pydantic import BaseModel, Field

from server.query.fleet import Status


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
