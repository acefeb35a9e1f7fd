"""``push.v1.PusherService/Push``: what Grafana Alloy's ``pyroscope.write`` sends (Connect, binary or JSON).

A push holds series, each a set of labels (``__name__``, ``service_name``,
the target's others) and raw pprof samples. Each sample becomes one Stackyard
profile per kind it holds (:mod:`server.pyroscope.profilekinds`), stamped
with the profile's own time, with the series labels translated by
:mod:`server.pyroscope.series`.

* ``__delta__="false"``: the client already made its counters deltas. Without
  it a memory profile's ``alloc_*`` count since the process started, and the
  series' previous profile is subtracted (:mod:`server.pyroscope.cumulative`;
  the first one is the baseline, so only its in-use half is stored), as
  Pyroscope does.
* A sample's ``ID`` is its idempotency key: a retried Push stores nothing
  twice. Without an ID the key is the digest of the series and the bytes, so a
  retry of the same push is still recognised.
* One bad sample does not cost the others: every sample is tried, and the
  answer is the first refusal (its Connect code, so Alloy retries what is
  worth retrying: ``unavailable``, ``resource_exhausted``), naming the sample
  and how many others were stored.
"""

from __future__ import annotations

import hashlib
import logging

from anyio import to_thread
from fastapi import Request

from server.api.deps import ingestion_of, settings_of
from server.errors import InvalidParameter
from server.pprof.select import SampleView
from server.pyroscope.connect import BodyLimits, ConnectError, ConnectService, as_connect_error
from server.pyroscope.cumulative import PreviousProfiles, delta_bytes
from server.pyroscope.profilekinds import Part, parts_of
from server.pyroscope.proto.push.v1 import push_pb2
from server.pyroscope.sdk import part_key, sample_types
from server.pyroscope.series import SeriesLabels, translate
from server.pyroscope.writer import Write, store
from server.settings import Settings
from server.store import idempotency

log = logging.getLogger(__name__)

#: Series, labels and profiles one push may hold. Alloy sends one series per target and profile type,
#: each with a dozen labels and one profile: 100,000 is thousands of targets in one request.
PUSH_ELEMENTS = 100_000


def _push_limits(settings: Settings) -> BodyLimits:
    """The body limit after gunzip too: the profiles inside are gzip already, so an honest push hardly grows."""
    return BodyLimits(settings.max_body_bytes, settings.max_body_bytes, elements=PUSH_ELEMENTS)


pusher = ConnectService(push_pb2.DESCRIPTOR.services_by_name["PusherService"], limits=_push_limits)
PROCEDURE = "push.v1.PusherService/Push"


def previous_profiles(request: Request) -> PreviousProfiles:
    """This app's memory of each series' last cumulative profile (made on first use)."""
    state = request.app.state
    found: PreviousProfiles | None = getattr(state, "pyroscope_previous", None)
    if found is None:
        found = state.pyroscope_previous = PreviousProfiles()
    return found


def sample_key(sample: push_pb2.RawSample, series: SeriesLabels) -> str:
    if sample.ID:
        key = f"push:{sample.ID}"
        if len(key) <= idempotency.MAX_KEY_LENGTH and key.isprintable() and key.isascii():
            return key
        return "push-id:" + hashlib.sha256(sample.ID.encode()).hexdigest()
    digest = hashlib.sha256(repr(sorted(series.labels.items())).encode())
    digest.update(sample.raw_profile)
    return "push-content:" + digest.hexdigest()


@pusher.unary("Push", push_pb2.PushRequest)
async def push(message: push_pb2.PushRequest, request: Request) -> push_pb2.PushResponse:
    settings = settings_of(request)
    previous = previous_profiles(request)
    stored = 0
    refusals: list[tuple[str, ConnectError]] = []
    for s, raw_series in enumerate(message.series):
        where = f"series {s}"
        try:
            series = translate(((pair.name, pair.value) for pair in raw_series.labels), "labels")
        except InvalidParameter as exc:
            refusals.append((where, as_connect_error(exc, PROCEDURE)))
            continue
        for n, sample in enumerate(raw_series.samples):
            try:
                stored += await _store_sample(request, settings, previous, series, sample)
            except Exception as exc:
                refusals.append((f"{where} sample {n}", as_connect_error(exc, PROCEDURE)))
    if refusals:
        where, first = refusals[0]
        others = f"; {len(refusals) - 1} other samples were refused too" if len(refusals) > 1 else ""
        raise ConnectError(first.code, f"{where}: {first.message}{others}; {stored} profiles were stored")
    return push_pb2.PushResponse()


async def _store_sample(
    request: Request,
    settings: Settings,
    previous: PreviousProfiles,
    series: SeriesLabels,
    sample: push_pb2.RawSample,
) -> int:
    """Store one raw sample as its parts; the number of profiles stored (a cumulative baseline stores fewer)."""
    data = bytes(sample.raw_profile)
    types = await to_thread.run_sync(sample_types, data, settings)
    parts = parts_of(series.name, types, already_delta=series.delta == "false")
    key = sample_key(sample, series)
    count = 0
    for part in parts:
        payload: bytes | None = data
        baseline = (*sorted(series.labels.items()), ("__name__", series.name or ""))
        if part.cumulative:
            payload = await _delta_since_previous(previous, baseline, data, settings)
        if payload is not None:
            await store(ingestion_of(request), _write(payload, series, part, key, len(parts)))
            count += 1
        if part.cumulative:
            previous.remember(baseline, data)  # only once stored: a retry of a failed write subtracts the same
    return count


async def _delta_since_previous(
    previous: PreviousProfiles, series: tuple[tuple[str, str], ...], data: bytes, settings: Settings
) -> bytes | None:
    before = previous.get(series)
    if before is None:
        log.info("cumulative baseline", extra={"service": dict(series).get("service")})
        return None
    return await to_thread.run_sync(delta_bytes, before, data, settings.max_decompressed_bytes)


def _write(data: bytes, series: SeriesLabels, part: Part, key: str, parts: int) -> Write:
    view: SampleView | None = part.view
    return Write(data, {**series.labels, **part.labels}, part.kind, view, None, part_key(key, part, parts))
