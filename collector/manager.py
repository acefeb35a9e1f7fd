"""The scrape manager: targets in, one scheduled job per (target, profile kind), profiles out to a sink.

Shaped like Prometheus' scrape manager: a periodic sync reads the target
sources, starts jobs for new targets and stops those that vanished or
changed; each job runs on APScheduler at a stable offset within its interval
(a hash of the target), at most one run in flight, skipping ticks while it
backs off after failures. Every failure becomes that target's health, and
nothing one target does can stall another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.delta import DeltaTracker
from collector.errors import HTTPStatusError, ScrapeError
from collector.fetch import Fetcher
from collector.health import HealthState
from collector.metrics import CollectorMetrics
from collector.sinks import ScrapedProfile, Sink
from server.errors import Unavailable
from server.network.redact import redact_credentials
from server.pprof.errors import ProfileError
from server.pprof.limits import DecodeLimits
from server.scrape.protocol import ScrapeHealth
from server.scrape.spec import DELTA_KINDS, OPTIONAL_KINDS, TIMED_KINDS, ProfileSpec, TargetSpec, in_shard, offset_s

log = logging.getLogger(__name__)
# APScheduler warns on every tick a slow job skips; stackyard_scrapes_skipped_total counts them instead.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
logging.getLogger("apscheduler.executors").setLevel(logging.ERROR)

TargetSource = Callable[[], Iterable[TargetSpec]]
#: An optional kind a target answered 404 for is asked again this often (an upgraded Go may serve it).
NOT_SERVED_RETRY_S = 3600.0


def _log_sync_failure(event: str, exc: BaseException) -> None:
    """A target source's failure: one line while it is away (it says why), a traceback otherwise.

    A source that is away (``serve``'s database, raising :class:`~server.errors.Unavailable`) fails every
    sync, each few seconds; a traceback each time would bury the one line that matters.
    """
    if isinstance(exc, Unavailable):
        log.warning(event, extra={"error": exc.reason})
    else:
        log.error(event, exc_info=exc)


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``: this collector takes shard I (0-based) of N."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard {text!r} is not I/N (for example 0/3)") from None
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard {text!r}: need 0 <= I < N")
        return cls(index, count)


@dataclass(slots=True)
class _Job:
    target: TargetSpec
    spec: ProfileSpec
    health: HealthState


class ScrapeManager:
    def __init__(
        self,
        sources: list[TargetSource],
        sink: Sink,
        fetcher: Fetcher,
        metrics: CollectorMetrics,
        shard: Shard | None = None,
        sync_interval_s: float = 5.0,
        max_decompressed: int = 256 * 1024 * 1024,
        decode_limits: DecodeLimits | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """``owns(target key)`` says whether a target is this process's to scrape (``serve`` replicas sharing
        a fleet); it is asked at every sync and again before every scrape, so a replica that lost its place
        stops at once. Call :meth:`targets_changed` when its answers change."""
        self._sources = sources
        self._owns = owns
        self._sink = sink
        self._fetcher = fetcher
        self._metrics = metrics
        self._shard = shard or Shard()
        self._sync_interval_s = sync_interval_s
        self._deltas = DeltaTracker(max_decompressed, decode_limits)
        self._jobs: dict[str, _Job] = {}
        self._health: dict[tuple[str, str], HealthState] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._static: list[TargetSpec] = []
        self._known: dict[str, TargetSpec] = {}  # the last targets read, re-divided when ownership changes
        self._sync_requested: asyncio.Event | None = None
        self._sync_task: asyncio.Task[None] | None = None
        # Optional kinds a target answered 404 for: asked only every NOT_SERVED_RETRY_S while the target stays.
        self._not_served: dict[str, TargetSpec] = {}

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self._scheduler.add_listener(
            lambda _event: self._metrics.skipped.inc(), EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED
        )
        self._scheduler.start()
        self._sync_requested = asyncio.Event()
        try:
            await self.sync()
        except Exception as exc:  # e.g. the database holding the targets is not up yet: the sync loop retries
            _log_sync_failure("first target sync failed", exc)
        self._sync_task = asyncio.create_task(self._sync_loop(), name="target-sync")

    async def stop(self, deadline_s: float = 10.0) -> None:
        """Stop scheduling, let scrapes in flight finish within the deadline, then flush the sink."""
        started = time.monotonic()
        if self._sync_task is not None:
            self._sync_task.cancel()
        if self._scheduler is not None:
            # Pause first: shutting APScheduler's asyncio executor down cancels jobs still running.
            self._scheduler.pause()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=deadline_s)
            for task in pending:
                task.cancel()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        await self._sink.close(max(0.0, deadline_s - (time.monotonic() - started)))
        await self._fetcher.close()

    async def _sync_loop(self) -> None:
        assert self._sync_requested is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_requested.wait(), timeout=self._sync_interval_s)
            self._sync_requested.clear()
            try:
                await self.sync()
            except Exception as exc:  # a broken source must not stop scraping of the targets we have
                _log_sync_failure("target sync failed", exc)

    def targets_changed(self) -> None:
        if self._sync_requested is not None:
            self._sync_requested.set()

    # -- sync --------------------------------------------------------------

    async def sync(self) -> None:
        targets: dict[str, TargetSpec] = {}
        try:
            for source in self._sources:
                for target in await asyncio.to_thread(lambda s=source: list(s())):  # type: ignore[misc]
                    targets.setdefault(target.key, target)
        except Exception:
            if self._owns is not None:  # the targets are unreadable, but who owns them may have changed
                self._apply(self._known)
            raise
        self._known = targets
        self._apply(targets)

    def _apply(self, targets: dict[str, TargetSpec]) -> None:
        self._static = [t for t in targets.values() if t.source != "api"]
        self._not_served = {j: t for j, t in self._not_served.items() if targets.get(t.key) == t}
        wanted: dict[str, tuple[TargetSpec, ProfileSpec]] = {}
        for target in targets.values():
            if target.paused or not in_shard(target, self._shard.index, self._shard.count):
                continue
            if self._owns is not None and not self._owns(target.key):
                continue
            for spec in target.enabled_profiles():
                wanted[f"{target.key}|{spec.kind}"] = (target, spec)
        for job_id in [j for j in self._jobs if j not in wanted or self._jobs[j].target != wanted[j][0]]:
            self._remove(job_id)
        for job_id, (target, spec) in wanted.items():
            if job_id not in self._jobs:
                self._add(job_id, target, spec)
        self._metrics.targets.set(len({job.target.key for job in self._jobs.values()}))

    def _interval(self, job_id: str, target: TargetSpec, spec: ProfileSpec) -> float:
        if self._not_served.get(job_id) == target:
            return max(NOT_SERVED_RETRY_S, target.interval_for(spec))
        return target.interval_for(spec)

    def _add(self, job_id: str, target: TargetSpec, spec: ProfileSpec) -> None:
        health = self._health.setdefault((target.key, spec.kind), HealthState(spec.kind))
        self._jobs[job_id] = _Job(target, spec, health)
        if self._scheduler is None:
            return
        interval = self._interval(job_id, target, spec)
        start = datetime.fromtimestamp(offset_s(job_id, interval), tz=UTC)
        self._scheduler.add_job(
            self._run,
            IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
            args=[job_id],
            id=job_id,
            # Delta requests span the whole interval, so the next one starts as the last finishes.
            max_instances=2 if spec.kind in DELTA_KINDS else 1,
            misfire_grace_time=max(1, int(interval / 2)),
            replace_existing=True,
        )

    def _remove(self, job_id: str) -> None:
        job = self._jobs.pop(job_id)
        if self._scheduler is not None and self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)
        if not any(j.target.key == job.target.key for j in self._jobs.values()):
            self._deltas.forget(job.target.key)
            for key in [k for k in self._health if k[0] == job.target.key]:
                del self._health[key]

    # -- one scrape --------------------------------------------------------

    async def _run(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None or not job.health.may_run():
            return
        if self._owns is not None and not self._owns(job.target.key):
            return  # no longer ours (a replica joined or this one lost the database); the next sync removes it
        interval = self._interval(job_id, job.target, job.spec)
        offset = offset_s(job_id, interval)
        slot = math.floor((time.time() - offset) / interval) * interval + offset

        def started() -> None:
            # Lag counts until the request really goes out, past the fetch limits.
            self._metrics.schedule_lag.observe(max(0.0, time.time() - slot))

        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self.scrape(job.target, job.spec, job.health, started)
        except asyncio.CancelledError:
            return  # stop() ran out of time for this scrape; nothing to report per job
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def scrape(
        self, target: TargetSpec, spec: ProfileSpec, health: HealthState, on_start: Callable[[], None] | None = None
    ) -> None:
        """Fetch one profile and hand it to the sink, recording the outcome as health and metrics."""
        started_ns = time.time_ns()
        started = time.perf_counter()
        labels = target.series_labels()
        interval = target.interval_for(spec)
        result = "success"
        try:
            data = await self._fetch(target, spec, started_ns, on_start)
            if data is not None:
                await self._sink.send(ScrapedProfile(spec.kind, labels, data, started_ns, target.key))
        except HTTPStatusError as exc:
            if exc.status == 404 and spec.kind in OPTIONAL_KINDS:
                health.unserved(started_ns, time.perf_counter() - started)
                self._ask_rarely(target, spec)
                return
            result = exc.reason
            health.failed(started_ns, time.perf_counter() - started, _at(str(exc), exc.url), interval)
        except ScrapeError as exc:  # from the fetch (which names its URL) or the sink (the body it was given)
            result = exc.reason
            error = _at(str(exc), exc.url or target.url_for(spec, None))
            health.failed(started_ns, time.perf_counter() - started, error, interval)
        except ProfileError as exc:
            result = "invalid_profile"
            error = _at(f"not a pprof profile: {exc}", target.url_for(spec, None))
            health.failed(started_ns, time.perf_counter() - started, error, interval)
        except Exception as exc:  # never let one target's surprise kill the job
            result = "error"
            log.exception("scrape failed unexpectedly", extra={"target": target.key, "kind": spec.kind})
            health.failed(started_ns, time.perf_counter() - started, f"internal error: {exc}", interval)
        else:
            health.succeeded(started_ns, time.perf_counter() - started)
            if self._not_served.pop(f"{target.key}|{spec.kind}", None) is not None:
                self._reschedule(target, spec)  # served now (Go was upgraded): back to the usual interval
        elapsed = time.perf_counter() - started
        self._metrics.scrape_duration.labels(spec.kind).observe(elapsed)
        self._metrics.scrapes.labels(spec.kind, result).inc()
        self._metrics.target_up.labels(target.service, labels["instance"], spec.kind).set(
            1 if result == "success" else 0
        )
        log.info(
            "scrape",
            extra={
                "target": target.shown_url,
                "service": target.service,
                "kind": spec.kind,
                "outcome": result,
                "ms": round(elapsed * 1000, 1),
                "error": health.last_error if result != "success" else None,
            },
        )

    def _ask_rarely(self, target: TargetSpec, spec: ProfileSpec) -> None:
        """An optional kind the target does not serve (404): no error in its health, and asked only hourly."""
        job_id = f"{target.key}|{spec.kind}"
        if self._not_served.get(job_id) == target:
            return
        self._not_served[job_id] = target
        self._reschedule(target, spec)
        log.info("not served", extra={"target": target.shown_url, "kind": spec.kind, "outcome": "retry_rarely"})

    def _reschedule(self, target: TargetSpec, spec: ProfileSpec) -> None:
        job_id = f"{target.key}|{spec.kind}"
        job = self._jobs.get(job_id)
        if job is None or job.target != target or self._scheduler is None:
            return
        interval = self._interval(job_id, target, spec)
        start = datetime.fromtimestamp(time.time() + interval, tz=UTC)
        self._scheduler.reschedule_job(
            job_id, trigger=IntervalTrigger(seconds=interval, start_date=start, timezone=UTC)
        )

    async def _fetch(
        self, target: TargetSpec, spec: ProfileSpec, started_ns: int, on_start: Callable[[], None] | None
    ) -> bytes | None:
        timeout = target.timeout_for(spec)
        if spec.kind not in TIMED_KINDS:
            return await self._fetcher.get(target, target.url_for(spec, None), timeout, on_start=on_start)
        seconds = target.seconds_for(spec)
        snapshot_timeout = target.timeout_for(ProfileSpec("heap"))
        if spec.kind in DELTA_KINDS and self._deltas.client_side(target.key, spec.kind):
            cumulative = await self._fetcher.get(
                target, target.url_for(spec, None), snapshot_timeout, on_start=on_start
            )
            return await asyncio.to_thread(self._deltas.next, target.key, spec.kind, cumulative, started_ns)
        try:
            return await self._fetcher.get(
                target, target.url_for(spec, seconds), timeout, timed=True, on_start=on_start
            )
        except HTTPStatusError:
            if spec.kind not in DELTA_KINDS:
                raise
            # The target cannot compute deltas itself: take cumulative snapshots and subtract here.
            cumulative = await self._fetcher.get(target, target.url_for(spec, None), snapshot_timeout)
            self._deltas.fall_back(target.key, spec.kind)
            log.info("client-side deltas", extra={"target": target.shown_url, "kind": spec.kind})
            return await asyncio.to_thread(self._deltas.next, target.key, spec.kind, cumulative, started_ns)

    # -- what the server asks ----------------------------------------------

    def health(self, target: TargetSpec) -> list[ScrapeHealth]:
        result = []
        for spec in target.enabled_profiles():
            job_id = f"{target.key}|{spec.kind}"
            state = self._health.get((target.key, spec.kind))
            if state is None:
                continue
            next_ns = None
            if self._scheduler is not None:
                scheduled = self._scheduler.get_job(job_id)
                if scheduled is not None and scheduled.next_run_time is not None:
                    next_ns = int(scheduled.next_run_time.timestamp() * 1e9)
            result.append(state.snapshot(next_ns))
        return result

    def scraped_health(self) -> list[tuple[str, ScrapeHealth]]:
        """(target key, health) of every job scheduled here: what a replica shares with the others."""
        return [(job.target.key, job.health.snapshot(None)) for job in self._jobs.values()]

    def static_targets(self) -> list[TargetSpec]:
        return list(self._static)

    async def capture_trace(self, target: TargetSpec, seconds: float) -> bytes:
        url = target.url.rstrip("/") + "/" + target.path_prefix.strip("/") + f"/trace?seconds={seconds:g}"
        try:
            return await self._fetcher.get(target, url, seconds + 10)
        except ScrapeError as exc:
            from server.errors import StackyardError

            error = StackyardError(f"trace capture from {target.shown_url} failed: {redact_credentials(str(exc))}")
            error.status_code = 502
            raise error from None

    def scheduled_jobs(self) -> int:
        return len(self._jobs)


def _at(error: str, url: str | None) -> str:
    """A health error names the URL it came from: a path pasted twice shows as such, not as a mystery 404."""
    return f"{error} (GET {url})" if url else error
