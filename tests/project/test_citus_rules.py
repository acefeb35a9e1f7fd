"""The schema stays inside the rules a Citus cluster would impose (docs/scaling.md#past-one-primary-citus).

There is no Citus here: what is checked is the migrated PostgreSQL catalog
(``pg_constraint``, ``pg_index``, ``pg_attribute``), read as it is when the test
runs, against the placement docs/scaling.md gives every table:

- every table has a place: distributed by ``series_id``, reference (copied to
  every node), or kept on the coordinator. A new table fails here until it is
  given one;
- a distributed table has a NOT NULL ``series_id``, and every primary key,
  unique constraint and unique index on it includes ``series_id`` (a node can
  only enforce uniqueness among the rows it holds);
- a foreign key between two distributed tables includes ``series_id`` on both
  sides, paired (so both rows live in the same shard); one from a distributed
  table to a reference table is fine; none points from a reference or coordinator
  table to a distributed one, nor from a distributed table to a coordinator one.

Today's schema keeps every rule: migration 0016 put ``series_id`` into the
blobs and goroutine groups and into every primary key of the distributed
tables (last, after the ids and partition keys, so lookups by id still use
the key's index; ``tests/server/store/test_series_keys.py`` checks the plans).
``KNOWN_EXCEPTIONS`` is empty. A breach that has to stay for a while may be
listed there with its reason (and in docs/scaling.md); a breach not listed
fails, and so does a listed one that no longer occurs.

What this cannot check is whether Citus itself accepts the schema and plans
Stackyard's statements: docs/scaling.md lists what stays untested without a
Citus cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.support.pgserver import PostgresServer

DISTRIBUTION_COLUMN = "series_id"

#: Tables that grow with every profile: hash-distributed by series id, co-located.
DISTRIBUTED = frozenset(
    {
        "profiles",
        "profile_blobs",
        "rollups",
        "rollup_blobs",
        "rollup_dirty",
        "goroutine_dumps",
        "goroutine_groups",
    }
)

#: Tables shared by every series (deduplicated by content, or naming the series): copied to every node.
REFERENCE = frozenset(
    {
        "series",
        "series_labels",
        "functions",
        "function_segments",
        "line_frames",
        "line_frame_segments",
        "stack_nodes",
        "stack_segments",
        "sample_keys",
        "sample_key_segments",
        "sample_key_lines",
        "sample_labelsets",
        "sample_labels",
        "profile_shapes",
        "goroutine_stacks",
        "segments",
    }
)

#: Small tables of configuration and coordination, read and written on their own: they stay on the coordinator.
COORDINATOR = frozenset(
    {
        "alembic_version",
        "targets",
        "traces",
        "store_state",
        "alert_rules",
        "alert_receivers",
        "alert_states",
        "alert_history",
        "alert_outbox",
        "members",
        "leases",
        "scrape_health",
    }
)

#: Tables named above that one version of the schema has and another not: the row-per-node, row-per-key and
#: row-per-frame storage, the segment tables that replaced them, and the one table those became (0021). Every
#: other name above must exist.
COMING_OR_GOING = frozenset(
    {
        "functions",
        "function_segments",
        "stack_nodes",
        "stack_segments",
        "sample_keys",
        "sample_key_segments",
        "sample_key_lines",
        "line_frames",
        "line_frame_segments",
        "segments",
    }
)

#: Breaches of the rules the schema is allowed, by (table, rule), each with the reason it stays. None today
#: (migration 0016 put series_id into every row and key of the distributed tables); a breach that must stay for
#: a while is listed here with its reason, and in docs/scaling.md.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]


@dataclass(frozen=True)
class Schema:
    tables: frozenset[str]
    not_null: dict[str, frozenset[str]]  # table -> its NOT NULL columns
    unique_keys: dict[str, list[tuple[str, tuple[str, ...]]]]  # table -> (index name, columns) of each unique index
    foreign_keys: list[ForeignKey]


TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
COLUMNS = """
SELECT c.relname, a.attname, a.attnotnull FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
"""
# Primary keys and unique constraints are unique indexes too; expression columns (attnum 0) come back as NULL.
UNIQUE_INDEXES = """
SELECT t.relname, i.relname, array_agg(a.attname ORDER BY k.ord)
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class i ON i.oid = x.indexrelid
CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE n.nspname = 'public' AND x.indisunique AND NOT t.relispartition AND k.ord <= x.indnkeyatts
GROUP BY t.relname, i.relname
"""
FOREIGN_KEYS = """
SELECT con.conname, t.relname, r.relname,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint con
JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class r ON r.oid = con.confrelid
WHERE n.nspname = 'public' AND con.contype = 'f' AND con.conparentid = 0 AND NOT t.relispartition
"""


def read_schema(dsn: str) -> Schema:
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = frozenset(row[0] for row in conn.execute(TABLES))
        not_null: dict[str, set[str]] = {table: set() for table in tables}
        for table, column, required in conn.execute(COLUMNS):
            if required:
                not_null[table].add(column)
        unique_keys: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for table, index, columns in conn.execute(UNIQUE_INDEXES):
            unique_keys.setdefault(table, []).append((index, tuple(c or "(expression)" for c in columns)))
        foreign_keys = [
            ForeignKey(name, table, tuple(columns), referenced, tuple(referenced_columns))
            for name, table, referenced, columns, referenced_columns in conn.execute(FOREIGN_KEYS)
        ]
    return Schema(tables, {t: frozenset(c) for t, c in not_null.items()}, unique_keys, foreign_keys)


def breaches(schema: Schema) -> dict[tuple[str, str], list[str]]:
    """Every breach of the rules, by (table, rule), with what breaks it."""
    found: dict[tuple[str, str], list[str]] = {}

    def breach(table: str, rule: str, detail: str) -> None:
        found.setdefault((table, rule), []).append(detail)

    for table in sorted(schema.tables & DISTRIBUTED):
        if DISTRIBUTION_COLUMN not in schema.not_null[table]:
            breach(table, "no series_id column", f"{table} has no NOT NULL {DISTRIBUTION_COLUMN}")
        for index, columns in schema.unique_keys.get(table, []):
            if DISTRIBUTION_COLUMN not in columns:
                breach(table, "unique key without series_id", f"{index} ({', '.join(columns)})")
    for key in schema.foreign_keys:
        source_distributed, target_distributed = key.table in DISTRIBUTED, key.referenced in DISTRIBUTED
        if source_distributed and target_distributed:
            pairs = set(zip(key.columns, key.referenced_columns, strict=True))
            if (DISTRIBUTION_COLUMN, DISTRIBUTION_COLUMN) not in pairs:
                breach(key.table, "foreign key between distributed tables without series_id", key.name)
        elif target_distributed:
            breach(key.table, "foreign key to a distributed table from a reference or coordinator table", key.name)
        elif source_distributed and key.referenced in COORDINATOR:
            breach(key.table, "foreign key from a distributed table to a coordinator table", key.name)
    return found


@pytest.fixture(scope="module")
def schema(postgres: PostgresServer, postgres_template: str) -> Iterator[Schema]:
    """The catalog of a database made from the session's migrated template (migrations as they are now)."""
    name = f"citus_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name, template=postgres_template)
    try:
        yield read_schema(url.replace("postgresql+psycopg://", "postgresql://"))
    finally:
        postgres.drop_database(name)


@pytest.mark.postgres
def test_every_table_has_one_place(schema: Schema) -> None:
    placed = DISTRIBUTED | REFERENCE | COORDINATOR
    assert not DISTRIBUTED & REFERENCE and not DISTRIBUTED & COORDINATOR and not REFERENCE & COORDINATOR
    unplaced = sorted(schema.tables - placed)
    assert not unplaced, f"tables with no place in a Citus cluster (add them to docs/scaling.md and here): {unplaced}"
    gone = sorted(placed - COMING_OR_GOING - schema.tables)
    assert not gone, f"tables named here that the schema no longer has: {gone}"
    assert schema.tables & DISTRIBUTED, "no distributed table found: is this the migrated catalog?"


@pytest.mark.postgres
def test_distributed_tables_keep_the_rules(schema: Schema) -> None:
    found = breaches(schema)
    new = {key: details for key, details in found.items() if key not in KNOWN_EXCEPTIONS}
    assert not new, f"breaches of the Citus rules that docs/scaling.md does not list: {new}"
    fixed = sorted(key for key in KNOWN_EXCEPTIONS if key not in found)
    assert not fixed, f"listed as known exceptions but no longer breached (remove them here and in the docs): {fixed}"


def test_the_rules_catch_what_they_are_meant_to() -> None:
    """The checker itself, on a schema made up for it: each rule fires, and a schema that keeps them passes."""
    good = Schema(
        tables=frozenset({"profiles", "profile_blobs", "series", "targets"}),
        not_null={
            "profiles": frozenset({"series_id", "id"}),
            "profile_blobs": frozenset({"series_id", "profile_id"}),
            "series": frozenset({"id"}),
            "targets": frozenset({"id"}),
        },
        unique_keys={
            "profiles": [("pk_profiles", ("series_id", "id"))],
            "profile_blobs": [("pk_profile_blobs", ("series_id", "profile_id"))],
        },
        foreign_keys=[
            ForeignKey("fk_blob", "profile_blobs", ("series_id", "profile_id"), "profiles", ("series_id", "id")),
            ForeignKey("fk_series", "profiles", ("series_id",), "series", ("id",)),
        ],
    )
    assert breaches(good) == {}
    bad = Schema(
        tables=good.tables,
        not_null={**good.not_null, "profile_blobs": frozenset({"profile_id"})},
        unique_keys={**good.unique_keys, "profiles": [("pk_profiles", ("id",))]},
        foreign_keys=[
            ForeignKey("fk_blob", "profile_blobs", ("profile_id",), "profiles", ("id",)),
            ForeignKey("fk_back", "series", ("id",), "profiles", ("series_id",)),
            ForeignKey("fk_target", "profiles", ("id",), "targets", ("id",)),
        ],
    )
    assert set(breaches(bad)) == {
        ("profile_blobs", "no series_id column"),
        ("profiles", "unique key without series_id"),
        ("profile_blobs", "foreign key between distributed tables without series_id"),
        ("series", "foreign key to a distributed table from a reference or coordinator table"),
        ("profiles", "foreign key from a distributed table to a coordinator table"),
    }
