"""Registered scrape targets and captured traces: CRUD over their tables."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.errors import NotFound, StackyardError
from server.scrape.spec import Auth, ProfileSpec, TargetSpec
from server.store.models import TargetRow, TraceRow


class Conflict(StackyardError):
    status_code = 409


def _row(target: TargetSpec) -> dict[str, Any]:
    return {
        "url": target.url,
        "service": target.service,
        "labels": dict(target.labels),
        "interval_s": target.interval_s,
        "timeout_s": target.timeout_s,
        "profiles": [asdict(p) for p in target.profiles],
        "path_prefix": target.path_prefix,
        "auth": asdict(target.auth) if target.auth else None,
        "paused": target.paused,
        "max_response_bytes": target.max_response_bytes,
    }


def _target(row: Any) -> TargetSpec:
    return TargetSpec(
        url=row.url,
        service=row.service,
        labels=dict(row.labels),
        interval_s=float(row.interval_s),
        timeout_s=None if row.timeout_s is None else float(row.timeout_s),
        profiles=tuple(ProfileSpec(**p) for p in row.profiles),
        path_prefix=row.path_prefix,
        auth=Auth(**row.auth) if row.auth else None,
        paused=bool(row.paused),
        id=int(row.id),
        source="api",
        max_response_bytes=None if row.max_response_bytes is None else int(row.max_response_bytes),
    )


class TargetTable:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, target: TargetSpec) -> TargetSpec:
        try:
            with self._engine.begin() as conn:
                target_id = conn.execute(
                    insert(TargetRow).returning(TargetRow.id), [{**_row(target), "created_ns": time.time_ns()}]
                ).scalar_one()
        except IntegrityError:
            raise Conflict(f"a target for {target.shown_url} with service {target.service!r} already exists") from None
        return target.with_id(int(target_id))

    def list(self) -> list[TargetSpec]:
        with self._engine.connect() as conn:
            return [_target(row) for row in conn.execute(select(TargetRow).order_by(TargetRow.id))]

    def get(self, target_id: int) -> TargetSpec:
        with self._engine.connect() as conn:
            row = conn.execute(select(TargetRow).where(TargetRow.id == target_id)).first()
        if row is None:
            raise NotFound(f"no target with id {target_id}")
        return _target(row)

    def replace(self, target: TargetSpec) -> TargetSpec:
        assert target.id is not None
        try:
            with self._engine.begin() as conn:
                changed = conn.execute(update(TargetRow).where(TargetRow.id == target.id).values(**_row(target)))
        except IntegrityError:
            raise Conflict(f"a target for {target.shown_url} with service {target.service!r} already exists") from None
        if changed.rowcount == 0:
            raise NotFound(f"no target with id {target.id}")
        return target

    def delete(self, target_id: int) -> None:
        with self._engine.begin() as conn:
            removed = conn.execute(delete(TargetRow).where(TargetRow.id == target_id))
        if removed.rowcount == 0:
            raise NotFound(f"no target with id {target_id}")


class TraceTable:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, target: TargetSpec, seconds: float, data: bytes) -> int:
        with self._engine.begin() as conn:
            row = {
                "target_id": target.id,
                "url": target.url,
                "time_ns": time.time_ns(),
                "seconds": seconds,
                "size": len(data),
                "data": data,
            }
            return int(conn.execute(insert(TraceRow).returning(TraceRow.id), [row]).scalar_one())

    def get(self, trace_id: int) -> tuple[dict[str, Any], bytes]:
        with self._engine.connect() as conn:
            row = conn.execute(select(TraceRow).where(TraceRow.id == trace_id)).first()
        if row is None:
            raise NotFound(f"no trace with id {trace_id}")
        meta = {
            "id": row.id,
            "target_id": row.target_id,
            "url": row.url,
            "time_ns": row.time_ns,
            "seconds": row.seconds,
            "size": row.size,
        }
        return meta, bytes(row.data)
