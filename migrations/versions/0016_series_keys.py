"""series keys: ``series_id`` in every row and every key of the tables that grow with every profile

The tables a Citus cluster would distribute by series (docs/scaling.md,
"Past one primary: Citus") must carry the series id in every row and in every
primary key and unique constraint, since a node can only enforce uniqueness
among the rows it holds:

- ``profile_blobs``, ``rollup_blobs`` and ``goroutine_groups`` get a NOT NULL
  ``series_id``, copied from their profile, rollup or dump (rows whose owner is
  gone are deleted: they were unreadable already, and have no series to copy);
- on PostgreSQL, the primary keys of all seven (those three, ``profiles``,
  ``rollups``, ``rollup_dirty``, ``goroutine_dumps``) end in ``series_id``.
  It goes last, not first: Citus needs the column in the key, not in front, and
  an id-first key still answers "the blob of profile 42" (or rollup 42, the
  groups of dump 42) from the index, as before. The unique keys of ``rollups``
  (series, width, bucket, shape) and ``goroutine_dumps`` (series, time) hold
  it already. No foreign key joins two of these tables (0014 dropped them), so
  none needs pairing.

SQLite keeps its keys as they are, and gets the columns only (the code is one
for both databases). Its ids come from ``INTEGER PRIMARY KEY`` columns, which
are the rowid, and only such a one-column key counts up by itself
(``AUTOINCREMENT`` included): a key of (id, series_id) would leave new rows
without an id. SQLite is never distributed, and an id alone is the stricter
key, so nothing is lost.

On PostgreSQL each primary key is rebuilt, on every partition: the copy and the
new indexes take time in proportion to the data, so stop the servers while it
runs. The downgrade restores the keys of 0014 and drops the columns.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables that get the column: their owner, and how a row finds it (``{c}`` the row's table, ``o`` the owner).
CHILDREN: list[tuple[str, str, str]] = [
    ("profile_blobs", "profiles", "o.id = {c}.profile_id AND o.time_ns = {c}.time_ns"),
    (
        "rollup_blobs",
        "rollups",
        "o.id = {c}.rollup_id AND o.width_s = {c}.width_s AND o.bucket_ns = {c}.bucket_ns",
    ),
    ("goroutine_groups", "goroutine_dumps", "o.id = {c}.dump_id AND o.time_ns = {c}.time_ns"),
]

#: PostgreSQL's primary keys before (0014) and after.
KEYS: dict[str, tuple[str, str]] = {
    "profiles": ("id, time_ns", "id, time_ns, series_id"),
    "profile_blobs": ("profile_id, time_ns", "profile_id, time_ns, series_id"),
    "rollups": ("id, width_s, bucket_ns", "id, width_s, bucket_ns, series_id"),
    "rollup_blobs": ("rollup_id, width_s, bucket_ns", "rollup_id, width_s, bucket_ns, series_id"),
    "rollup_dirty": ("id", "id, series_id"),
    "goroutine_dumps": ("id, time_ns", "id, time_ns, series_id"),
    "goroutine_groups": ("dump_id, stack_id, state, time_ns", "dump_id, stack_id, state, time_ns, series_id"),
}


def _x(statement: str) -> None:
    op.execute(sa.text(statement))


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for table, owner, match in CHILDREN:
        op.add_column(table, sa.Column("series_id", sa.BigInteger(), nullable=True))
        if _postgresql():  # a join; SQLite before 3.33 has no UPDATE ... FROM, so it asks row by row
            _x(f"UPDATE {table} c SET series_id = o.series_id FROM {owner} o WHERE {match.format(c='c')}")
        else:
            _x(f"UPDATE {table} SET series_id = (SELECT o.series_id FROM {owner} o WHERE {match.format(c=table)})")
        _x(f"DELETE FROM {table} WHERE series_id IS NULL")
        if _postgresql():
            _x(f"ALTER TABLE {table} ALTER COLUMN series_id SET NOT NULL")
        else:
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.alter_column("series_id", existing_type=sa.BigInteger(), nullable=False)
    if _postgresql():
        for table, (_, after) in KEYS.items():
            _primary_key(table, after)


def downgrade() -> None:
    if _postgresql():
        for table, (before, _) in KEYS.items():
            _primary_key(table, before)
    for table, _, _ in reversed(CHILDREN):
        if _postgresql():
            op.drop_column(table, "series_id")
        else:
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.drop_column("series_id")


def _primary_key(table: str, columns: str) -> None:
    """Replace a table's primary key (on a partitioned table, every partition's with it)."""
    _x(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
    _x(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({columns})")
