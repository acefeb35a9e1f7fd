"""SQLAlchemy 2 tables: everything that repeats between scrapes is stored once.

- ``series``: one row per (profile kind, label set), with its labels also in
  ``series_labels`` so selectors can be answered by index.
- ``segments``: what every profile shares, stored once as append-only compressed
  segments of rows, one kind each (:class:`SegmentKind`): functions, deduplicated
  by their strings; sample keys; (function, line) frames; and the nodes of the
  stack trees (see docs/storage.md).
- The function stack tree: a prefix tree of stacks, one node per (parent, function);
  a stack is the id of its leaf node. Parent 0 is the (virtual) root. A node's
  ``recursive`` flag marks a function that already occurs among its ancestors,
  which is what lets queries compute pprof's ``cum`` (counted once per sample)
  with array arithmetic.
- ``sample_labelsets``: deduplicated pprof sample labels (``pprof.Do``).
- ``profiles``: one row per scrape or push, with totals; its samples live in
  ``profile_blobs`` as one compact array blob (see :mod:`server.store.blob`),
  and what its value columns mean in ``profile_shapes`` (shared by all).

On PostgreSQL the tables that grow with every profile (profiles and their
blobs, rollups and theirs, goroutine dumps and groups) are range-partitioned
by time (:mod:`server.store.partitions`); their primary keys there include
the time and the series id (what a Citus cluster would distribute them by,
docs/scaling.md), which these models, written for both databases, leave out.
Each row of them carries its series id, the blobs and groups their owner's.

The schema itself is created only by Alembic migrations; a test checks that
these models and the migrations agree.
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("kind", "labels_hash"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    labels_hash: Mapped[int] = mapped_column(BigInteger)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)


class SeriesLabel(Base):
    __tablename__ = "series_labels"
    __table_args__ = (Index("ix_series_labels_name_value", "name", "value"),)

    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# Tables whose rows garbage collection deletes must never hand a deleted id out again (caches in
# other processes may still hold it), so SQLite gets AUTOINCREMENT; PostgreSQL sequences never reuse.
NO_REUSE = {"sqlite_autoincrement": True}


class SegmentKind(enum.IntEnum):
    """What a ``segments`` row holds. The stack trees keep the numbers they had as ``stack_segments.tree``."""

    FUNCTION_STACKS = 0  # nodes of the prefix tree of function ids (server.store.stacks, tree 0)
    LINE_STACKS = 1  # no longer written: the prefix tree of (function, line) frames (migration 0022 converts it)
    SAMPLE_KEYS = 2  # hash, stack node, label set (server.store.samplekeys)
    LINE_FRAMES = 3  # no longer written: the (function, line) frames of kind 1 (migration 0022 converts them)
    FUNCTIONS = 4  # name, system name, file name, start line (server.store.symbols)
    LINE_VECTORS = 5  # each sample key's lines, frame by frame (server.store.linevectors)


class SegmentRow(Base):
    """A run of rows of one kind written together, ids ``first_id..last_id`` (gaps where collected), as
    compressed bytes whose layout its kind's module owns.

    Every kind is appended only, under the kind's append lock (:mod:`server.store.appends`), each segment
    starting past every id of its kind written before it, so ``first_id`` orders a kind's segments and says
    what is new. One table for all kinds rather than one each (migration 0021): on PostgreSQL every table
    that grows past a page carries a 24 KB free-space map and, once a value passes 2 KB, a TOAST table with
    its own map and index; a store's first day paid that four times.
    """

    __tablename__ = "segments"

    kind: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    first_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)
    items: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SampleLabelset(Base):
    __tablename__ = "sample_labelsets"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    hash: Mapped[int] = mapped_column(BigInteger, unique=True)
    labels: Mapped[list[list[str]]] = mapped_column(JSON)
    num_labels: Mapped[list[list[object]]] = mapped_column(JSON)


class SampleLabel(Base):
    __tablename__ = "sample_labels"
    __table_args__ = (Index("ix_sample_labels_name_value", "name", "value"),)

    labelset_id: Mapped[int] = mapped_column(ForeignKey("sample_labelsets.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)


class ProfileShape(Base):
    """What a profile's value columns mean: sample types, period type, default type. A handful exist."""

    __tablename__ = "profile_shapes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    hash: Mapped[int] = mapped_column(BigInteger, unique=True)
    period_type: Mapped[str] = mapped_column(String(128))
    sample_types: Mapped[str] = mapped_column(Text)
    default_sample_type: Mapped[str] = mapped_column(String(128))


class ProfileRow(Base):
    __tablename__ = "profiles"
    __table_args__ = (
        Index("ix_profiles_series_time", "series_id", "time_ns"),
        # Not unique: on PostgreSQL a unique index must include the partition column, and a key must be
        # unique across all times. ProfileTable.insert_rows looks a key up under a lock per key instead.
        # Only rows with a key (migration 0020): scraped profiles have none, and a key is all it is searched for.
        Index(
            "ix_profiles_idempotency_key",
            "idempotency_key",
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    shape_id: Mapped[int] = mapped_column(ForeignKey("profile_shapes.id"))
    time_ns: Mapped[int] = mapped_column(BigInteger)
    duration_ns: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(Integer)
    totals: Mapped[list[int]] = mapped_column(JSON)
    # sha256 of the writer's idempotency key (see server.store.idempotency); NULL for pushes without one.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ProfileBlob(Base):
    """A profile's samples. ``time_ns`` is its profile's, so both live in the same time partition.

    No foreign key to ``profiles``: between two partitioned tables it would
    have to include the time and would block dropping a partition; the two
    rows are written in one transaction and removed together by time
    (``stackyard check`` reports a blob without its profile).
    """

    __tablename__ = "profile_blobs"

    profile_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    time_ns: Mapped[int] = mapped_column(BigInteger)
    series_id: Mapped[int] = mapped_column(BigInteger)  # its profile's
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TargetRow(Base):
    """A scrape target registered through the API or CLI (config-file targets are not stored)."""

    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("url", "service"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048))
    service: Mapped[str] = mapped_column(String(256))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    interval_s: Mapped[float] = mapped_column(Float)
    timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    profiles: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    path_prefix: Mapped[str] = mapped_column(String(512))
    auth: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    max_response_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TraceRow(Base):
    """An execution trace captured on demand; opaque bytes for ``go tool trace``."""

    __tablename__ = "traces"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("targets.id", ondelete="SET NULL"), nullable=True)
    url: Mapped[str] = mapped_column(String(2048))
    time_ns: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float] = mapped_column(Float)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Rollup(Base):
    """Profiles of one series pre-merged per hour (``width_s`` 3600) or day (86400), so long ranges read few rows.

    A rollup exists only while it is complete: ingesting a profile into a
    closed bucket deletes the bucket's rollups, and the maintenance job
    rebuilds them, so a query may always use one in place of the raw profiles.
    """

    __tablename__ = "rollups"
    __table_args__ = (
        UniqueConstraint("series_id", "width_s", "bucket_ns", "shape_id"),
        Index("ix_rollups_width_bucket", "width_s", "bucket_ns"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    width_s: Mapped[int] = mapped_column(Integer)
    bucket_ns: Mapped[int] = mapped_column(BigInteger)
    shape_id: Mapped[int] = mapped_column(ForeignKey("profile_shapes.id"))
    profiles: Mapped[int] = mapped_column(Integer)
    duration_ns: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[int] = mapped_column(BigInteger)
    samples: Mapped[int] = mapped_column(Integer)
    totals: Mapped[list[int]] = mapped_column(JSON)
    max_totals: Mapped[list[int]] = mapped_column(JSON)  # the largest single profile's totals, for max trends


class RollupBlob(Base):
    """A rollup's merged samples, apart from its row: trends read many rollup rows and no samples.

    With the blob inline, a week's fleet trend read every rollup's samples off
    disk just to reach its totals (10 µs a row on SQLite); apart, the rollup
    rows are a narrow table, like ``profiles`` beside ``profile_blobs``.
    """

    __tablename__ = "rollup_blobs"

    # Its rollup's width and bucket, the partition keys on PostgreSQL (no foreign key, as for profile_blobs).
    rollup_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    width_s: Mapped[int] = mapped_column(Integer)
    bucket_ns: Mapped[int] = mapped_column(BigInteger)
    series_id: Mapped[int] = mapped_column(BigInteger)  # its rollup's
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RollupDirty(Base):
    """An hour that took a profile after it closed: its rollups were dropped and must be built again.

    The maintenance job scans raw profiles only from a time watermark on
    (``store_state.rollup_scan_ns``); late data behind the watermark is found
    here instead, so a run costs the new hour, not the whole raw retention.
    Written in the late profile's own transaction, so none is missed.
    """

    __tablename__ = "rollup_dirty"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(BigInteger)
    bucket_ns: Mapped[int] = mapped_column(BigInteger)


class StoreState(Base):
    """Small named counters shared by every process; ``gc_epoch`` tells caches that rows were collected."""

    __tablename__ = "store_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class AlertRuleRow(Base):
    """An alert rule created through the API (config-file rules are not stored); ``spec`` is its JSON form."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    spec: Mapped[dict[str, object]] = mapped_column(JSON)
    created_ns: Mapped[int] = mapped_column(BigInteger)


class AlertReceiverRow(Base):
    __tablename__ = "alert_receivers"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    webhook_url: Mapped[str] = mapped_column(String(2048))
    created_ns: Mapped[int] = mapped_column(BigInteger)


class AlertStateRow(Base):
    """The state of one rule on one instance (its labels' fingerprint): what survives a restart."""

    __tablename__ = "alert_states"
    __table_args__ = (UniqueConstraint("rule_name", "fingerprint"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rule_name: Mapped[str] = mapped_column(String(256))
    fingerprint: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    annotations: Mapped[dict[str, str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    active_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # condition true since
    fired_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # startsAt of the current firing
    resolved_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    # Which rule of that name: its creation time (0 for config-file rules). A rule deleted and made again
    # under the same name is another rule, and must not inherit this state (it would fire too early).
    rule_created_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AlertHistoryRow(Base):
    __tablename__ = "alert_history"
    __table_args__ = (Index("ix_alert_history_time", "time_ns"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rule_name: Mapped[str] = mapped_column(String(256))
    fingerprint: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    time_ns: Mapped[int] = mapped_column(BigInteger)


class AlertOutboxRow(Base):
    """One notification to send: written with the state change that causes it, so it is neither lost nor doubled.

    The unique key (receiver, rule, instance, firing start, status) is what
    makes "one firing, one message" hold across restarts and replicas.
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("receiver", "rule_name", "fingerprint", "starts_ns", "status"),
        Index("ix_alert_outbox_outcome_next", "outcome", "next_ns"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    receiver: Mapped[str] = mapped_column(String(256))
    rule_name: Mapped[str] = mapped_column(String(256))
    fingerprint: Mapped[str] = mapped_column(String(16))
    starts_ns: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_ns: Mapped[int] = mapped_column(BigInteger)
    claimed_until_ns: Mapped[int] = mapped_column(BigInteger)
    sent_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class GoroutineStack(Base):
    """One goroutine stack (frames and ``created by``), deduplicated by a hash of its content.

    ``function`` and ``location`` are where its goroutines block (the first
    frame outside the runtime), kept as columns because every view names them.
    """

    __tablename__ = "goroutine_stacks"
    __table_args__ = NO_REUSE

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    hash: Mapped[int] = mapped_column(BigInteger, unique=True)
    function: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(Text)
    frames: Mapped[list[list[object]]] = mapped_column(JSON)  # [[function, file, line], ...], innermost first


class GoroutineDump(Base):
    """One ``goroutine?debug=2`` dump of one series (kind ``goroutine_dump``) at one time."""

    __tablename__ = "goroutine_dumps"
    __table_args__ = (UniqueConstraint("series_id", "time_ns"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    time_ns: Mapped[int] = mapped_column(BigInteger)
    goroutines: Mapped[int] = mapped_column(Integer)


class GoroutineGroup(Base):
    """The goroutines of one dump in one state with one stack: how many, how long they waited, how many locked."""

    __tablename__ = "goroutine_groups"
    __table_args__ = (Index("ix_goroutine_groups_stack_id", "stack_id"),)

    # The dump's time, its partition key on PostgreSQL; no foreign key to the dump (as for profile_blobs).
    dump_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    stack_id: Mapped[int] = mapped_column(ForeignKey("goroutine_stacks.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    time_ns: Mapped[int] = mapped_column(BigInteger)
    series_id: Mapped[int] = mapped_column(BigInteger)  # its dump's
    count: Mapped[int] = mapped_column(Integer)
    max_wait_minutes: Mapped[int] = mapped_column(Integer)
    median_wait_minutes: Mapped[float] = mapped_column(Float)
    locked: Mapped[int] = mapped_column(Integer)


class MemberRow(Base):
    """One running ``serve`` replica on a shared database: who it is, and when it last said it was alive.

    Times are the database's clock (nanoseconds since the epoch), never a
    replica's own, so replicas whose clocks disagree still agree who is alive.
    """

    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    started_ns: Mapped[int] = mapped_column(BigInteger)
    heartbeat_ns: Mapped[int] = mapped_column(BigInteger)


class LeaseRow(Base):
    """A named job only one replica may run at a time, held by ``holder`` until ``expires_ns`` (database clock)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_ns: Mapped[int] = mapped_column(BigInteger)


class ScrapeHealthRow(Base):
    """The last known health of one (target, profile kind), published by the replica that scrapes it.

    Scrape health lives in the scraping replica's memory; this copy lets every
    other replica show it too. ``key_hash`` is the target key's stable hash,
    ``updated_ns`` the database's clock at the last publication.
    """

    __tablename__ = "scrape_health"

    key_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    member: Mapped[str] = mapped_column(String(64))
    health: Mapped[dict[str, object]] = mapped_column(JSON)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
