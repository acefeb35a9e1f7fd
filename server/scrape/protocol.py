"""What the server needs from a scraper, as an interface: health to show, traces to capture.

The collector implements :class:`Scraper`; the composition root (``stackyard``)
passes it to ``create_app``. The server depends only on this protocol, never
on the collector package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from server.scrape.spec import TargetSpec


@dataclass(frozen=True, slots=True)
class ScrapeHealth:
    kind: str
    up: bool | None  # None: not scraped yet
    last_scrape_ns: int | None
    last_duration_ms: float | None
    last_error: str | None
    consecutive_failures: int
    next_scrape_ns: int | None = None
    not_served: bool = False  # an optional kind (goroutineleak) this target's Go version does not serve


class Scraper(Protocol):
    def health(self, target: TargetSpec) -> list[ScrapeHealth]:
        """Health of every enabled profile kind of ``target`` (empty when not scheduled here)."""
        ...

    def targets_changed(self) -> None:
        """Targets were added, changed or removed: re-read them soon."""
        ...

    async def capture_trace(self, target: TargetSpec, seconds: float) -> bytes:
        """Fetch an execution trace (``/debug/pprof/trace?seconds=N``) now."""
        ...
