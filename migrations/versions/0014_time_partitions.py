"""time partitions on PostgreSQL: the tables that grow with every profile, range-partitioned by time

On PostgreSQL, ``profiles``, ``profile_blobs``, ``rollups``, ``rollup_blobs``,
``goroutine_dumps`` and ``goroutine_groups`` become partitioned tables (see
server/store/partitions.py): each is rebuilt under its own name, its rows
copied into partitions of one day covering the data it holds (plus a default
partition), and the old table dropped. The copy takes time in proportion to
the data: stop the servers while it runs.

On both databases: the blobs and goroutine groups carry their partition keys
(``time_ns``; a rollup blob its ``width_s`` and ``bucket_ns``), the foreign
keys between these tables go (a partition must be droppable on its own), and
the idempotency key index is no longer unique (a unique index on PostgreSQL
must include the time; the store looks keys up under a lock instead). SQLite
keeps plain tables.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DAY_NS = 86_400 * 10**9
HOUR_S, DAY_S = 3600, 86400

#: Each partitioned table: how it is partitioned, its primary key there, and where a new column's values come
#: from when its rows are copied from the old table ``o`` (joined to its owner, already copied).
PARTITIONED: list[tuple[str, str, str, str, dict[str, str]]] = [
    ("profiles", "RANGE (time_ns)", "id, time_ns", "", {}),
    (
        "profile_blobs",
        "RANGE (time_ns)",
        "profile_id, time_ns",
        "JOIN profiles p ON p.id = o.profile_id",
        {"time_ns": "p.time_ns"},
    ),
    ("rollups", "LIST (width_s)", "id, width_s, bucket_ns", "", {}),
    (
        "rollup_blobs",
        "LIST (width_s)",
        "rollup_id, width_s, bucket_ns",
        "JOIN rollups r ON r.id = o.rollup_id",
        {"width_s": "r.width_s", "bucket_ns": "r.bucket_ns"},
    ),
    ("goroutine_dumps", "RANGE (time_ns)", "id, time_ns", "", {}),
    (
        "goroutine_groups",
        "RANGE (time_ns)",
        "dump_id, stack_id, state, time_ns",
        "JOIN goroutine_dumps d ON d.id = o.dump_id",
        {"time_ns": "d.time_ns"},
    ),
]

#: Constraints and indexes of the partitioned tables (each partition gets its own copy).
PARTITIONED_KEYS = [
    "CREATE INDEX ix_profiles_series_time ON profiles (series_id, time_ns)",
    "CREATE INDEX ix_profiles_idempotency_key ON profiles (idempotency_key)",
    "ALTER TABLE profiles ADD CONSTRAINT fk_profiles_series_id_series FOREIGN KEY (series_id)"
    " REFERENCES series (id) ON DELETE CASCADE",
    "ALTER TABLE profiles ADD CONSTRAINT fk_profiles_shape_id_profile_shapes FOREIGN KEY (shape_id)"
    " REFERENCES profile_shapes (id)",
    "ALTER TABLE rollups ADD CONSTRAINT uq_rollups_series_id UNIQUE (series_id, width_s, bucket_ns, shape_id)",
    "CREATE INDEX ix_rollups_width_bucket ON rollups (width_s, bucket_ns)",
    "ALTER TABLE rollups ADD CONSTRAINT fk_rollups_series_id_series FOREIGN KEY (series_id)"
    " REFERENCES series (id) ON DELETE CASCADE",
    "ALTER TABLE rollups ADD CONSTRAINT fk_rollups_shape_id_profile_shapes FOREIGN KEY (shape_id)"
    " REFERENCES profile_shapes (id)",
    "ALTER TABLE goroutine_dumps ADD CONSTRAINT uq_goroutine_dumps_series_id UNIQUE (series_id, time_ns)",
    "ALTER TABLE goroutine_dumps ADD CONSTRAINT fk_goroutine_dumps_series_id_series FOREIGN KEY (series_id)"
    " REFERENCES series (id) ON DELETE CASCADE",
    "CREATE INDEX ix_goroutine_groups_stack_id ON goroutine_groups (stack_id)",
    "ALTER TABLE goroutine_groups ADD CONSTRAINT fk_goroutine_groups_stack_id_goroutine_stacks"
    " FOREIGN KEY (stack_id) REFERENCES goroutine_stacks (id)",
]

#: The same tables as they were before (0013), for the downgrade.
PLAIN_KEYS = [
    "ALTER TABLE profiles ADD CONSTRAINT pk_profiles PRIMARY KEY (id)",
    "CREATE INDEX ix_profiles_series_time ON profiles (series_id, time_ns)",
    "CREATE UNIQUE INDEX uq_profiles_idempotency_key ON profiles (idempotency_key)",
    "ALTER TABLE profiles ADD CONSTRAINT fk_profiles_series_id_series FOREIGN KEY (series_id)"
    " REFERENCES series (id) ON DELETE CASCADE",
    "ALTER TABLE profiles ADD CONSTRAINT fk_profiles_shape_id_profile_shapes FOREIGN KEY (shape_id)"
    " REFERENCES profile_shapes (id)",
    "ALTER TABLE profile_blobs ADD CONSTRAINT pk_profile_blobs PRIMARY KEY (profile_id)",
    "ALTER TABLE profile_blobs ADD CONSTRAINT fk_profile_blobs_profile_id_profiles FOREIGN KEY (profile_id)"
    " REFERENCES profiles (id) ON DELETE CASCADE",
    "ALTER TABLE rollups ADD CONSTRAINT pk_rollups PRIMARY KEY (id)",
    "ALTER TABLE rollups ADD CONSTRAINT uq_rollups_series_id UNIQUE (series_id, width_s, bucket_ns, shape_id)",
    "CREATE INDEX ix_rollups_width_bucket ON rollups (width_s, bucket_ns)",
    "ALTER TABLE rollups ADD CONSTRAINT fk_rollups_series_id_series FOREIGN KEY (series_id)"
    " REFERENCES series (id) ON DELETE CASCADE",
    "ALTER TABLE rollups ADD CONSTRAINT fk_rollups_shape_id_profile_shapes FOREIGN KEY (shape_id)"
    " REFERENCES profile_shapes (id)",
    "ALTER TABLE rollup_blobs ADD CONSTRAINT pk_rollup_blobs PRIMARY KEY (rollup_id)",
    "ALTER TABLE rollup_blobs ADD CONSTRAINT fk_rollup_blobs_rollup_id_rollups FOREIGN KEY (rollup_id)"
    " REFERENCES rollups (id) ON DELETE CASCADE",
    "ALTER TABLE goroutine_dumps ADD CONSTRAINT pk_goroutine_dumps PRIMARY KEY (id)",
    "ALTER TABLE goroutine_dumps ADD CONSTRAINT uq_goroutine_dumps_series_id UNIQUE (series_id, time_ns)",
    "ALTER TABLE goroutine_dumps ADD CONSTRAINT fk_goroutine_dumps_series_id_series FOREIGN KEY (series_id)"
    " REFERENCES series (id) ON DELETE CASCADE",
    "ALTER TABLE goroutine_groups ADD CONSTRAINT pk_goroutine_groups PRIMARY KEY (dump_id, stack_id, state)",
    "CREATE INDEX ix_goroutine_groups_stack_id ON goroutine_groups (stack_id)",
    "ALTER TABLE goroutine_groups ADD CONSTRAINT fk_goroutine_groups_dump_id_goroutine_dumps FOREIGN KEY (dump_id)"
    " REFERENCES goroutine_dumps (id) ON DELETE CASCADE",
    "ALTER TABLE goroutine_groups ADD CONSTRAINT fk_goroutine_groups_stack_id_goroutine_stacks"
    " FOREIGN KEY (stack_id) REFERENCES goroutine_stacks (id)",
]

#: Columns 0014 adds: the partition keys of the tables that hold another table's rows' details.
NEW_COLUMNS = {
    "profile_blobs": [("time_ns", "BIGINT")],
    "rollup_blobs": [("width_s", "INTEGER"), ("bucket_ns", "BIGINT")],
    "goroutine_groups": [("time_ns", "BIGINT")],
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition()
    else:
        _sqlite_downgrade()


# -- PostgreSQL ------------------------------------------------------------


def _x(statement: str) -> None:
    op.execute(sa.text(statement))


def _set_aside(table: str, renamed: str) -> None:
    """Rename a table out of the way, and free the names of its keys and indexes (they are schema-wide)."""
    bind = op.get_bind()
    _x(f"ALTER TABLE {table} RENAME TO {renamed}")
    for (name,) in bind.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype IN ('p', 'u', 'f')"),
        {"t": renamed},
    ).all():
        _x(f'ALTER TABLE {renamed} DROP CONSTRAINT IF EXISTS "{name}"')
    for (name,) in bind.execute(
        sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = to_regclass(:t)"
        ),
        {"t": renamed},
    ).all():
        _x(f'DROP INDEX IF EXISTS "{name}"')


def _move_sequence(old: str, new: str, column: str) -> None:
    sequence = op.get_bind().execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": old, "c": column}).scalar()
    if sequence:
        _x(f"ALTER SEQUENCE {sequence} OWNED BY {new}.{column}")


def _day(start_ns: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(start_ns // 10**9, datetime.UTC).strftime("%Y%m%d")


def _range_partitions(parent: str, starts: set[int], width_ns: int) -> None:
    _x(f"CREATE TABLE {parent}_default PARTITION OF {parent} DEFAULT")
    for start in sorted(starts):
        _x(
            f"CREATE TABLE {parent}_p{_day(start)} PARTITION OF {parent}"
            f" FOR VALUES FROM ({start}) TO ({start + width_ns})"
        )


def _starts(query: str, width_ns: int) -> set[int]:
    rows = op.get_bind().execute(sa.text(query), {"w": width_ns}).scalars().all()
    return {int(value) for value in rows}


def _partition() -> None:
    for table, name in (
        ("profile_blobs", "fk_profile_blobs_profile_id_profiles"),
        ("rollup_blobs", "fk_rollup_blobs_rollup_id_rollups"),
        ("goroutine_groups", "fk_goroutine_groups_dump_id_goroutine_dumps"),
    ):
        _x(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for table in ("profile_blobs", "rollup_blobs", "goroutine_groups"):
        for column, kind in NEW_COLUMNS[table]:
            _x(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for table, clause, _, _, _ in PARTITIONED:
        _set_aside(table, f"{table}_unpartitioned")
        _x(f"CREATE TABLE {table} (LIKE {table}_unpartitioned INCLUDING DEFAULTS) PARTITION BY {clause}")
        for column, _kind in NEW_COLUMNS.get(table, []):
            _x(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")
    # The ranges that hold data now, a day each (daily rollups: 30 days); later ones come from the upkeep job.
    raw = _starts("SELECT DISTINCT time_ns - time_ns % :w FROM profiles_unpartitioned", DAY_NS)
    dumps = _starts("SELECT DISTINCT time_ns - time_ns % :w FROM goroutine_dumps_unpartitioned", DAY_NS)
    hourly = _starts(
        f"SELECT DISTINCT bucket_ns - bucket_ns % :w FROM rollups_unpartitioned WHERE width_s = {HOUR_S}", DAY_NS
    )
    daily = _starts(
        f"SELECT DISTINCT bucket_ns - bucket_ns % :w FROM rollups_unpartitioned WHERE width_s = {DAY_S}", 30 * DAY_NS
    )
    for table in ("profiles", "profile_blobs"):
        _range_partitions(table, raw, DAY_NS)
    for table in ("goroutine_dumps", "goroutine_groups"):
        _range_partitions(table, dumps, DAY_NS)
    for table in ("rollups", "rollup_blobs"):
        for name, width_s, starts, span in (("hourly", HOUR_S, hourly, DAY_NS), ("daily", DAY_S, daily, 30 * DAY_NS)):
            _x(
                f"CREATE TABLE {table}_{name} PARTITION OF {table} FOR VALUES IN ({width_s})"
                " PARTITION BY RANGE (bucket_ns)"
            )
            _range_partitions(f"{table}_{name}", starts, span)
    # Parents before children: the copies of blobs and groups read their time from the new parent tables.
    for table, _, key, join, sources in PARTITIONED:
        names = _columns(table)
        values = ", ".join(sources.get(name, f'o."{name}"') for name in names)
        columns = ", ".join(f'"{name}"' for name in names)
        _x(f"INSERT INTO {table} ({columns}) SELECT {values} FROM {table}_unpartitioned o {join}")
        _x(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})")
    for statement in PARTITIONED_KEYS:
        _x(statement)
    for table, *_ in PARTITIONED:  # ids keep counting from where they were (never reused)
        for column in _columns(table):
            _move_sequence(f"{table}_unpartitioned", table, column)
    for table, *_ in reversed(PARTITIONED):
        _x(f"DROP TABLE {table}_unpartitioned")


def _columns(table: str) -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum"
        ),
        {"t": table},
    )
    return [str(name) for (name,) in rows]


def _unpartition() -> None:
    for table, *_ in PARTITIONED:
        _set_aside(table, f"{table}_partitioned")
        _x(f"CREATE TABLE {table} (LIKE {table}_partitioned INCLUDING DEFAULTS)")
        for column, _kind in NEW_COLUMNS.get(table, []):
            _x(f"ALTER TABLE {table} DROP COLUMN {column}")
        columns = ", ".join(f'"{c}"' for c in _columns(table))
        _x(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_partitioned")
    for statement in PLAIN_KEYS:
        _x(statement)
    for table, *_ in PARTITIONED:  # ids keep counting from where they were (never reused)
        for column in _columns(table):
            _move_sequence(f"{table}_partitioned", table, column)
    for table, *_ in reversed(PARTITIONED):
        _x(f"DROP TABLE {table}_partitioned CASCADE")


# -- SQLite ----------------------------------------------------------------


def _sqlite_upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.drop_index("uq_profiles_idempotency_key")
        batch.create_index("ix_profiles_idempotency_key", ["idempotency_key"], unique=False)
    op.add_column("profile_blobs", sa.Column("time_ns", sa.BigInteger(), nullable=True))
    _x("UPDATE profile_blobs SET time_ns = (SELECT p.time_ns FROM profiles p WHERE p.id = profile_blobs.profile_id)")
    op.add_column("rollup_blobs", sa.Column("width_s", sa.Integer(), nullable=True))
    op.add_column("rollup_blobs", sa.Column("bucket_ns", sa.BigInteger(), nullable=True))
    _x(
        "UPDATE rollup_blobs SET width_s = (SELECT r.width_s FROM rollups r WHERE r.id = rollup_blobs.rollup_id),"
        " bucket_ns = (SELECT r.bucket_ns FROM rollups r WHERE r.id = rollup_blobs.rollup_id)"
    )
    op.add_column("goroutine_groups", sa.Column("time_ns", sa.BigInteger(), nullable=True))
    _x(
        "UPDATE goroutine_groups SET time_ns ="
        " (SELECT d.time_ns FROM goroutine_dumps d WHERE d.id = goroutine_groups.dump_id)"
    )
    # Rows whose owner is gone have no time (and were dead weight): they go, as PostgreSQL's copy leaves them.
    _x("DELETE FROM profile_blobs WHERE time_ns IS NULL")
    _x("DELETE FROM rollup_blobs WHERE bucket_ns IS NULL")
    _x("DELETE FROM goroutine_groups WHERE time_ns IS NULL")
    with op.batch_alter_table("profile_blobs", recreate="always") as batch:
        batch.drop_constraint("fk_profile_blobs_profile_id_profiles", type_="foreignkey")
        batch.alter_column("time_ns", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("rollup_blobs", recreate="always") as batch:
        batch.drop_constraint("fk_rollup_blobs_rollup_id_rollups", type_="foreignkey")
        batch.alter_column("width_s", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("bucket_ns", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("goroutine_groups", recreate="always") as batch:
        batch.drop_constraint("fk_goroutine_groups_dump_id_goroutine_dumps", type_="foreignkey")
        batch.alter_column("time_ns", existing_type=sa.BigInteger(), nullable=False)


def _sqlite_downgrade() -> None:
    with op.batch_alter_table("goroutine_groups", recreate="always") as batch:
        batch.drop_column("time_ns")
        batch.create_foreign_key(
            "fk_goroutine_groups_dump_id_goroutine_dumps", "goroutine_dumps", ["dump_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("rollup_blobs", recreate="always") as batch:
        batch.drop_column("width_s")
        batch.drop_column("bucket_ns")
        batch.create_foreign_key(
            "fk_rollup_blobs_rollup_id_rollups", "rollups", ["rollup_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("profile_blobs", recreate="always") as batch:
        batch.drop_column("time_ns")
        batch.create_foreign_key(
            "fk_profile_blobs_profile_id_profiles", "profiles", ["profile_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("profiles") as batch:
        batch.drop_index("ix_profiles_idempotency_key")
        batch.create_index("uq_profiles_idempotency_key", ["idempotency_key"], unique=True)
