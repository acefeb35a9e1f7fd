"""``POST /ingest``: what the pyroscope-go SDK (and Alloy's ``pyroscope.receive_http``) uploads.

``/ingest?name=app{k=v,...}&from=<ns>&until=<ns>&spyName=gospy&...`` with a
``multipart/form-data`` body (a gzipped pprof ``profile`` part, an optional
``sample_type_config`` JSON part, from old SDKs a ``prev_profile`` part), or
the pprof profile itself as the body. Every upload becomes one Stackyard
profile per kind it holds (:mod:`server.pyroscope.profilekinds`), stored at
``from`` (the start of the interval it covers, as the collector stamps a
scrape; ``until`` when ``from`` is absent, else the profile's own time).

It follows ``/api/v1/ingest``'s rules: the same limits and refusals (a JSON
4xx naming the problem), ``Idempotency-Key`` (a retry stores nothing twice),
the ``ingest`` scope. It answers 200, which is what the SDK takes for
success, with what was stored.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel

from server.api.body import read_body
from server.api.deps import IngestionDep, SettingsDep
from server.api.schemas.ingest import IngestOut
from server.errors import InvalidParameter, TimeRangeError, TooOld
from server.ingest.profile import check_idempotency_key
from server.pprof.decode import decode_columns
from server.pprof.select import sample_type_names
from server.pyroscope import uploadparams
from server.pyroscope.cumulative import delta_bytes
from server.pyroscope.multipart import is_multipart, read_form
from server.pyroscope.profilekinds import CUMULATIVE_KINDS, Part, parts_of, sdk_name
from server.pyroscope.series import parse_app_key
from server.pyroscope.writer import Write, store
from server.settings import Settings
from server.store import idempotency

router = APIRouter(tags=["pyroscope"])
SPY_LABEL = "pyroscope_spy"


class UploadOut(BaseModel):
    """What one upload stored: a profile per kind it held, as ``POST /api/v1/ingest`` answers each."""

    profiles: list[IngestOut]


def sample_types(data: bytes, settings: Settings) -> list[str]:
    """The profile's sample type names (decoding it fully: a broken profile is refused here)."""
    if not data:
        raise InvalidParameter("profile", "empty: expected a pprof profile (gzip-compressed or not)")
    return sample_type_names(decode_columns(data, settings.max_decompressed_bytes))


def part_key(key: str | None, part: Part, parts: int) -> str | None:
    """The idempotency key of one stored part: the client's own when the upload is one profile."""
    if key is None or parts == 1:
        return key
    derived = f"{key}|{part.kind}"
    if len(derived) > idempotency.MAX_KEY_LENGTH:
        derived = "sha256:" + hashlib.sha256(derived.encode()).hexdigest()
    return derived


@router.post("/ingest")
async def ingest_upload(
    request: Request,
    ingestion: IngestionDep,
    settings: SettingsDep,
    name: Annotated[str, Query(min_length=1)],
    from_: Annotated[str | None, Query(alias="from")] = None,
    until: Annotated[str | None, Query()] = None,
    format: Annotated[str | None, Query()] = None,
    spy_name: Annotated[str | None, Query(alias="spyName")] = None,
    sample_rate: Annotated[str | None, Query(alias="sampleRate")] = None,
    units: Annotated[str | None, Query()] = None,
    aggregation_type: Annotated[str | None, Query(alias="aggregationType")] = None,
    idempotency_key: Annotated[str | None, Query()] = None,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> UploadOut:
    series = parse_app_key(name)
    start, end = uploadparams.time_range_ns(from_, until)
    uploadparams.check_format(format)
    spy = uploadparams.check_short(spy_name, "spyName")
    uploadparams.check_sample_rate(sample_rate)
    uploadparams.check_short(units, "units")
    uploadparams.check_aggregation(aggregation_type)
    key = idempotency_header if idempotency_header is not None else idempotency_key
    check_idempotency_key(key)
    labels = {**series.labels, **({SPY_LABEL: spy} if spy else {})}

    content_type = request.headers.get("content-type")
    if is_multipart(content_type):
        declared = request.headers.get("content-length")
        form = await read_form(request.stream(), content_type or "", settings.max_body_bytes, declared)
        if "profile" not in form:
            raise InvalidParameter("body", "the multipart form has no 'profile' part (the gzipped pprof profile)")
        profile, previous = form["profile"], form.get("prev_profile")
        config = uploadparams.parse_sample_type_config(form.get("sample_type_config"))
    else:
        profile, previous, config = await read_body(request, settings.max_body_bytes), None, {}

    types = await to_thread.run_sync(sample_types, profile, settings)
    # The SDK computes its deltas itself (godeltaprof), as Pyroscope expects: only an old SDK's
    # prev_profile says the counters are cumulative, and then it also carries what to subtract.
    parts = parts_of(sdk_name(types, config), types, already_delta=True)
    delta: bytes | None = None
    if previous is not None:
        delta = await to_thread.run_sync(delta_bytes, previous, profile, settings.max_decompressed_bytes)
    stored: list[IngestOut] = []
    for part in parts:
        uses_delta = delta is not None and (part.kind is None or part.kind in CUMULATIVE_KINDS)
        write = Write(
            data=delta if uses_delta and delta is not None else profile,
            labels={**labels, **part.labels},
            kind=part.kind,
            view=part.view,
            time_ns=start if start is not None else end,
            key=part_key(key, part, len(parts)),
        )
        try:
            written = await store(ingestion, write)
        except TooOld as exc:  # /api/v1/ingest's advice (time=) is not for this route: from= is the time here
            raise TimeRangeError(
                "from", f"{exc.when} is older than the raw retention ({exc.retention}); such a profile is not stored"
            ) from None
        stored.append(IngestOut.of(written.body))
    return UploadOut(profiles=stored)
