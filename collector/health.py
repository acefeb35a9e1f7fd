"""Per (target, profile kind) health, and the exponential backoff of failing jobs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from server.network.redact import redact_credentials
from server.scrape.protocol import ScrapeHealth

MAX_BACKOFF_S = 300.0


@dataclass(slots=True)
class HealthState:
    kind: str
    up: bool | None = None
    last_scrape_ns: int | None = None
    last_duration_ms: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    retry_after_ns: int = 0
    not_served: bool = False  # an optional kind the target answered 404 for: asked again only rarely

    def succeeded(self, started_ns: int, duration_s: float) -> None:
        self.not_served = False
        self.up = True
        self.last_scrape_ns = started_ns
        self.last_duration_ms = round(duration_s * 1000, 1)
        self.last_error = None
        self.consecutive_failures = 0
        self.retry_after_ns = 0

    def failed(self, started_ns: int, duration_s: float, error: str, interval_s: float) -> None:
        """Failures back off: the job skips ticks for interval * 2^(failures-1), at most 5 minutes."""
        self.up = False
        self.last_scrape_ns = started_ns
        self.last_duration_ms = round(duration_s * 1000, 1)
        self.last_error = redact_credentials(error)  # health is shown to read tokens; a URL in it may carry a password
        self.consecutive_failures += 1
        backoff = min(MAX_BACKOFF_S, interval_s * 2 ** (self.consecutive_failures - 1))
        # Leave half an interval of slack so the tick after the backoff is not skipped by jitter.
        self.retry_after_ns = started_ns + int((backoff - interval_s / 2) * 1e9)

    def unserved(self, started_ns: int, duration_s: float) -> None:
        """A 404 for an optional kind: not a failure (the target is healthy), just nothing to scrape."""
        self.not_served = True
        self.up = None
        self.last_scrape_ns = started_ns
        self.last_duration_ms = round(duration_s * 1000, 1)
        self.last_error = None
        self.consecutive_failures = 0
        self.retry_after_ns = 0

    def may_run(self, now_ns: int | None = None) -> bool:
        return (now_ns if now_ns is not None else time.time_ns()) >= self.retry_after_ns

    def snapshot(self, next_scrape_ns: int | None) -> ScrapeHealth:
        return ScrapeHealth(
            kind=self.kind,
            up=self.up,
            last_scrape_ns=self.last_scrape_ns,
            last_duration_ms=self.last_duration_ms,
            last_error=self.last_error,
            consecutive_failures=self.consecutive_failures,
            next_scrape_ns=next_scrape_ns,
            not_served=self.not_served,
        )
