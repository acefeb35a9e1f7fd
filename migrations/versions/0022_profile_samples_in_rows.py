"""profile samples in rows: each profile's blob moves from ``profile_blobs`` into ``profiles.data``

A profile and its samples were two rows, written in one transaction and
removed together. The second row cost, beyond the blob itself, a row header
and a copy of (profile_id, time_ns, series_id) per profile, an entry in a
primary-key index of its own and, on PostgreSQL, a free-space map per time
partition: about 180 bytes a profile on a steady service's first day, near a
tenth of all it stores (docs/storage.md). One row also means one INSERT
fewer per profile, and no state in which one half exists without the other.

Upgrade: ``profiles`` gets a ``data`` column, each blob is copied into its
profile (matched on id and time, the partition key), ``data`` becomes NOT
NULL and ``profile_blobs`` is dropped (on PostgreSQL with its partitions; the
time-partition family "raw" is ``profiles`` alone from now on).

A profile without a blob is deleted. It could not be read (a query of it has
no samples to answer with, and an hourly rollup built over its hour left it
out), ``stackyard check`` reported it as damaged, and no write of this
version makes one: every profile is stored with its blob in one transaction.
Refusing to migrate instead would leave the operator nothing to do but
delete the same rows by hand. The rollups of its hour and day are dropped and
the hour marked dirty, so the upkeep job builds them again from the profiles
that remain (what a late profile does), and the count deleted is logged. A
blob without a profile (also reported by ``check``, also unreadable) goes
with the table.

On PostgreSQL the copy is an UPDATE of every profile: it takes time in
proportion to the data, so stop the servers while it runs, and each old
row version stays behind as dead space (about the old size of ``profiles``)
until ``VACUUM FULL profiles`` gives it back. On SQLite the table is rebuilt
to make the column NOT NULL, which needs free disk for one copy of it.

Downgrade: ``profile_blobs`` is made again as 0016 left it (on PostgreSQL
partitioned like ``profiles``, one partition for each of ``profiles``',
primary key (profile_id, time_ns, series_id)), filled from ``profiles.data``,
and the column is dropped.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 (reviewed by hand)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEYED = sa.text("idempotency_key IS NOT NULL")
HOUR_S, DAY_S = 3600, 86400
HOUR_NS, DAY_NS = HOUR_S * 10**9, DAY_S * 10**9


def _x(statement: str, parameters: dict[str, int] | None = None) -> int:
    """Run a statement; how many rows it touched."""
    return int(op.get_bind().execute(sa.text(statement), parameters or {}).rowcount or 0)


def _rows(statement: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in op.get_bind().execute(sa.text(statement))]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column("profiles", sa.Column("data", sa.LargeBinary(), nullable=True))
    if _postgresql():
        _x(
            "UPDATE profiles p SET data = b.data FROM profile_blobs b"
            " WHERE b.profile_id = p.id AND b.time_ns = p.time_ns"
        )
    else:  # SQLite before 3.33 has no UPDATE ... FROM; the blob's primary key answers each row's subquery
        _x(
            "UPDATE profiles SET data = (SELECT b.data FROM profile_blobs b"
            " WHERE b.profile_id = profiles.id AND b.time_ns = profiles.time_ns)"
        )
    _delete_profiles_without_samples()
    if _postgresql():
        _x("ALTER TABLE profiles ALTER COLUMN data SET NOT NULL")
    else:
        # The rebuild would copy the partial index without its WHERE clause: it is made again as 0020 made it.
        op.drop_index("ix_profiles_idempotency_key", table_name="profiles")
        with op.batch_alter_table("profiles", recreate="always") as batch:
            batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        op.create_index("ix_profiles_idempotency_key", "profiles", ["idempotency_key"], sqlite_where=_KEYED)
    op.drop_table("profile_blobs")  # on PostgreSQL its partitions go with it


def _delete_profiles_without_samples() -> None:
    """Delete the profiles no blob was copied into, and have their hours' rollups built again.

    An hourly rollup of such an hour may count the profile (built while its
    blob was there) and the day's is made of the hours': both are dropped and
    the hour marked dirty, as a late profile does (server.store.rollups), so
    the upkeep job rebuilds them from the profiles that remain.
    """
    hours = _rows(f"SELECT DISTINCT series_id, time_ns - time_ns % {HOUR_NS} FROM profiles WHERE data IS NULL")
    deleted = _x("DELETE FROM profiles WHERE data IS NULL")
    for series_id, hour in hours:
        for width_s, bucket in ((HOUR_S, int(hour)), (DAY_S, int(hour) - int(hour) % DAY_NS)):
            where = {"s": int(series_id), "w": width_s, "b": bucket}
            _x("DELETE FROM rollup_blobs WHERE series_id = :s AND width_s = :w AND bucket_ns = :b", where)
            _x("DELETE FROM rollups WHERE series_id = :s AND width_s = :w AND bucket_ns = :b", where)
        _x("INSERT INTO rollup_dirty (series_id, bucket_ns) VALUES (:s, :b)", {"s": int(series_id), "b": int(hour)})
    if deleted:
        log.warning(
            "deleted %d profiles that had no samples (unreadable, reported by stackyard check);"
            " the rollups of their %d hours are built again by the next upkeep run",
            deleted,
            len(hours),
        )


def downgrade() -> None:
    op.create_table(
        "profile_blobs",
        sa.Column("profile_id", ID, nullable=False, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("series_id", sa.BigInteger(), nullable=False),
        # SQLite's key is the profile id alone, as 0016 left it; PostgreSQL's is made below, after the copy.
        *([] if _postgresql() else [sa.PrimaryKeyConstraint("profile_id", name="pk_profile_blobs")]),
        postgresql_partition_by="RANGE (time_ns)",
    )
    if _postgresql():
        bounds = _rows(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('profiles') ORDER BY c.relname"
        )
        for row in bounds:  # profiles_p20261205 -> profile_blobs_p20261205, profiles_default likewise
            suffix, bound = str(row[0])[len("profiles") :], str(row[1])
            _x(f'CREATE TABLE "profile_blobs{suffix}" PARTITION OF profile_blobs {bound}')
    _x(
        "INSERT INTO profile_blobs (profile_id, data, time_ns, series_id)"
        " SELECT id, data, time_ns, series_id FROM profiles"
    )
    if _postgresql():
        _x("ALTER TABLE profile_blobs ADD CONSTRAINT pk_profile_blobs PRIMARY KEY (profile_id, time_ns, series_id)")
        op.drop_column("profiles", "data")
    else:
        op.drop_index("ix_profiles_idempotency_key", table_name="profiles")
        with op.batch_alter_table("profiles", recreate="always") as batch:
            batch.drop_column("data")
        op.create_index("ix_profiles_idempotency_key", "profiles", ["idempotency_key"], sqlite_where=_KEYED)
