"""Scrape health shared between replicas: each publishes its own share's, every one reads all of it.

Health is kept in memory by the replica that scrapes a target (it changes
with every scrape). Replicas behind one load balancer must still show the
same Targets and Fleet pages, so each writes its share's health here and
reads the rest. Rows of targets nobody has published for an hour (removed
targets, kinds switched off) are deleted by the next publisher.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from server.store.database import chunks
from server.store.members import NS, clock_now_ns
from server.store.models import ScrapeHealthRow

FORGET_AFTER_NS = 3600 * NS


def key_hash(target_key: str) -> int:
    """A target key as a signed 64-bit integer (the column's type), the same in every process."""
    return int.from_bytes(hashlib.blake2b(target_key.encode(), digest_size=8).digest(), "big", signed=True)


class ScrapeHealthTable:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def publish(self, member: str, health: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Write (target key, kind, health as JSON) rows as ``member``'s, replacing what was there."""
        with self.engine.begin() as conn:
            now = clock_now_ns(conn)
            rows = [
                {"key_hash": key_hash(key), "kind": kind, "member": member, "health": dict(body), "updated_ns": now}
                for key, kind, body in health
            ]
            if rows:
                insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(ScrapeHealthRow)
                statement = insert.on_conflict_do_update(
                    index_elements=["key_hash", "kind"],
                    set_={
                        "member": insert.excluded.member,
                        "health": insert.excluded.health,
                        "updated_ns": insert.excluded.updated_ns,
                    },
                )
                for chunk in chunks(rows, 1000):
                    conn.execute(statement, list(chunk))
            conn.execute(delete(ScrapeHealthRow).where(ScrapeHealthRow.updated_ns < now - FORGET_AFTER_NS))

    def read(self, since_ns: int = 0) -> tuple[int, dict[tuple[int, str], tuple[str, dict[str, Any]]]]:
        """The database's time, and the rows published since ``since_ns``: (key hash, kind) -> (member, health)."""
        with self.engine.connect() as conn:
            now = clock_now_ns(conn)
            rows = conn.execute(
                select(
                    ScrapeHealthRow.key_hash, ScrapeHealthRow.kind, ScrapeHealthRow.member, ScrapeHealthRow.health
                ).where(ScrapeHealthRow.updated_ns >= since_ns)
            ).all()
        return now, {(int(r[0]), str(r[1])): (str(r[2]), dict(r[3])) for r in rows}
