"""Label discovery for selectors and autocomplete: series labels, and pprof sample labels marked as such."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from server.api.deps import ReaderDep, SettingsDep
from server.api.schemas.labels import LabelNames, LabelValues
from server.ingest.profile import check_kind
from server.query import labels
from server.query.selector import parse_selector
from server.syntax.times import time_range_ns

router = APIRouter(prefix="/api/v1", tags=["labels"])

TypeParam = Annotated[str | None, Query(description="profile type; default: every type")]
QueryParam = Annotated[str | None, Query(description='selector the labels must go with, e.g. {service="api"}')]
FromParam = Annotated[str | None, Query(alias="from", description="where sample labels are looked for; default now-1h")]
ToParam = Annotated[str | None, Query(description="default now")]


@router.get("/labels")
def names(
    store: ReaderDep,
    settings: SettingsDep,
    type: TypeParam = None,
    query: QueryParam = None,
    from_: FromParam = None,
    to: ToParam = None,
) -> LabelNames:
    kind = check_kind(type)
    selector = parse_selector(query) if query else None
    start_ns, end_ns = time_range_ns(from_, to)
    found, sample = labels.label_names(store, kind, selector, start_ns, end_ns, settings.max_query_profiles)
    return LabelNames(names=found, sample_labels=sample)


@router.get("/labels/{name}/values")
def values(
    name: str,
    store: ReaderDep,
    settings: SettingsDep,
    type: TypeParam = None,
    query: QueryParam = None,
    from_: FromParam = None,
    to: ToParam = None,
) -> LabelValues:
    kind = check_kind(type)
    selector = parse_selector(query) if query else None
    start_ns, end_ns = time_range_ns(from_, to)
    found, sample = labels.label_values(store, name, kind, selector, start_ns, end_ns, settings.max_query_profiles)
    return LabelValues(name=name, values=found, sample_label=sample)
