"""Label discovery for selectors and autocomplete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from server.api.deps import StoreDep
from server.ingest import check_kind
from server.query import service
from server.query.selector import parse_selector

router = APIRouter(prefix="/api/v1", tags=["labels"])


@router.get("/labels")
def names(store: StoreDep, type: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    return {"names": service.label_names(store, check_kind(type))}


@router.get("/labels/{name}/values")
def values(
    name: str,
    store: StoreDep,
    type: Annotated[str | None, Query()] = None,
    query: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    kind = check_kind(type)
    selector = parse_selector(query) if query else None
    return {"name": name, "values": service.label_values(store, name, kind, selector)}
