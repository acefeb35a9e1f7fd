"""Time partitions on PostgreSQL: created ahead by the upkeep job, dropped whole by retention.

The tables that grow with every profile are range-partitioned by time:

- raw data, by ``time_ns``: ``profiles``, ``profile_blobs``, ``goroutine_dumps``,
  ``goroutine_groups``, one partition per interval (a day by default);
- rollups, by width first (``rollups_hourly``, ``rollups_daily``, and the same
  for ``rollup_blobs``), each then by ``bucket_ns``: hourly ones per interval,
  daily ones per :data:`DAILY_SPAN` intervals (they are 24 times fewer and kept
  for a year).

Every range-partitioned table also has a ``_default`` partition, which takes
whatever no partition covers: a profile arriving late for a day that never
had a partition, or one stamped far ahead. So a write is never refused for
lack of a partition, and ingest never runs DDL. When the upkeep job later
creates the partition for such a time, it moves the rows out of the default
partition in the same transaction.

Retention works in whole intervals on both databases, so SQLite and
PostgreSQL keep exactly the same rows: data older than its retention is
removed once the whole interval it falls in is (:func:`cutoff`). PostgreSQL
drops the partitions; rows of that age in a default partition are deleted.

SQLite has plain tables and none of this: :func:`is_partitioned` says which.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

NS = 1_000_000_000
HOUR_NS = 3600 * NS
DAY_NS = 24 * HOUR_NS
#: Daily rollups' partitions span this many intervals (30 days by default).
DAILY_SPAN = 30

_BOUNDS = re.compile(r"FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Family:
    """Tables partitioned alike: the same column, the same ranges, created and dropped together.

    ``lead`` is the table whose rows retention counts (the others hold their
    blobs or groups).
    """

    name: str
    tables: tuple[str, ...]
    column: str
    span: int  # intervals per partition

    @property
    def lead(self) -> str:
        return self.tables[0]


RAW = Family("raw", ("profiles", "profile_blobs"), "time_ns", 1)
DUMPS = Family("goroutine_dumps", ("goroutine_dumps", "goroutine_groups"), "time_ns", 1)
HOURLY = Family("hourly", ("rollups_hourly", "rollup_blobs_hourly"), "bucket_ns", 1)
DAILY = Family("daily", ("rollups_daily", "rollup_blobs_daily"), "bucket_ns", DAILY_SPAN)
FAMILIES = (RAW, DUMPS, HOURLY, DAILY)


@dataclass(frozen=True, slots=True)
class Partition:
    table: str  # the partition's own name
    parent: str
    start_ns: int
    end_ns: int


def is_partitioned(conn: Connection) -> bool:
    """Whether this database keeps time partitions (PostgreSQL, migrated to 0014 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('profiles')")).scalar()
    return kind == "p"


def cutoff(now_ns: int, retention_ns: int, interval_ns: int, span: int = 1) -> int:
    """Rows older than this go: the start of the partition that ``now - retention`` falls in.

    Data is kept at least its retention, and at most one partition longer.
    """
    width = interval_ns * span
    point = now_ns - retention_ns
    return point - point % width


def partition_name(parent: str, start_ns: int, interval_ns: int) -> str:
    """``profiles_p20261205`` for a day, ``profiles_p20261205t13`` for an interval shorter than a day."""
    when = datetime.fromtimestamp(start_ns // NS, UTC)
    stamp = when.strftime("%Y%m%d") if interval_ns % DAY_NS == 0 else when.strftime("%Y%m%dt%H")
    return f"{parent}_p{stamp}"


def partitions(conn: Connection, parent: str) -> list[Partition]:
    """The range partitions of one table (the default one left out), oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": parent},
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUNDS.search(str(bound))
        if match:
            found.append(Partition(str(name), parent, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda p: p.start_ns)


def create(conn: Connection, family: Family, start_ns: int, interval_ns: int) -> bool:
    """Create the family's partitions for ``[start, start + span)``, moving rows of that range out of the defaults.

    Returns False when a partition overlapping the range exists already (made
    by another process, or under another interval setting): nothing is done.
    Runs in the caller's transaction, so the family's tables get theirs together.

    The default partitions are locked (ACCESS EXCLUSIVE, as the attach takes them anyway) before any row
    moves. Locked only at the attach, the job would already hold the rows it moved: a late profile's
    write that had touched the default partition, then came to one of those rows (dropping its hour's
    rollup), waited for the job while the job waited for it, a deadlock PostgreSQL broke by aborting one.
    Now the job waits for writers holding the default partitions while it holds nothing they need, and
    writers wait for its commit. The lock order is the family's, the one writers touch its tables in.
    It also keeps a push from adding a row of the range to the default partition between the move and
    the attach, which then failed ("updated partition constraint for default partition ... would be
    violated"), leaving the range to the next run.
    """
    end_ns = start_ns + interval_ns * family.span
    if _overlaps(conn, family, start_ns, end_ns):
        return False
    defaults = ", ".join(f'"{parent}_default"' for parent in family.tables)
    conn.execute(text(f"LOCK TABLE {defaults} IN ACCESS EXCLUSIVE MODE"))
    if _overlaps(conn, family, start_ns, end_ns):  # another process made it while this one waited
        return False
    for parent in family.tables:
        name = partition_name(parent, start_ns, interval_ns)
        # Made apart, filled from the default partition, then attached: attaching checks the default holds
        # no row of the range any more, which it does not, as they were moved in this transaction.
        conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{parent}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
        conn.execute(
            text(
                f'WITH moved AS (DELETE FROM "{parent}_default" WHERE {family.column} >= :start'
                f" AND {family.column} < :end RETURNING *)"
                f' INSERT INTO "{name}" SELECT * FROM moved'
            ),
            {"start": start_ns, "end": end_ns},
        )
        conn.execute(
            text(f'ALTER TABLE "{parent}" ATTACH PARTITION "{name}" FOR VALUES FROM ({start_ns}) TO ({end_ns})')
        )
    return True


def _overlaps(conn: Connection, family: Family, start_ns: int, end_ns: int) -> bool:
    """Whether a partition of the family's lead table overlaps ``[start, end)``."""
    return any(p.start_ns < end_ns and start_ns < p.end_ns for p in partitions(conn, family.lead))


def ensure(engine: Engine, interval_ns: int, now_ns: int, ahead: int) -> list[str]:
    """The partitions of the current interval and ``ahead`` more, for every family; returns those created.

    Each family's range is created in a transaction of its own; another
    process creating the same one first is not an error (its partition stands).
    """
    made: list[str] = []
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return made
    for family in FAMILIES:
        width = interval_ns * family.span
        first = now_ns - now_ns % width
        for step in range(ahead + 1):
            start = first + step * width
            try:
                with engine.begin() as conn:
                    if create(conn, family, start, interval_ns):
                        made.append(partition_name(family.lead, start, interval_ns))
            except Exception as exc:  # a concurrent creation of the same table; anything else is logged too
                log.warning(
                    "partition not created", extra={"family": family.name, "start_ns": start, "error": str(exc)}
                )
    if made:
        log.info("partitions created", extra={"partitions": made})
    return made


def drop_before(conn: Connection, family: Family, before_ns: int) -> int:
    """Drop the family's partitions that end at or before ``before_ns``, and delete older rows of its defaults.

    Returns how many rows of the lead table went. Partitions are dropped
    whole (no row is deleted one by one, so nothing is left for vacuum);
    only the default partitions, which hold the odd late or early row, see
    a DELETE.
    """
    removed = 0
    for partition in partitions(conn, family.lead):
        if partition.end_ns > before_ns:
            continue
        removed += int(conn.execute(text(f'SELECT count(*) FROM "{partition.table}"')).scalar_one())
        suffix = partition.table[len(family.lead) :]
        for parent in family.tables:
            conn.execute(text(f'DROP TABLE IF EXISTS "{parent}{suffix}"'))
    for parent in family.tables:
        deleted = conn.execute(
            text(f'DELETE FROM "{parent}_default" WHERE {family.column} < :before'), {"before": before_ns}
        )
        if parent == family.lead:
            removed += int(deleted.rowcount or 0)
    return removed
