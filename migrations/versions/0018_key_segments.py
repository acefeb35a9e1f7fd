"""sample keys and line frames stored as compressed segments instead of one row each

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 (reviewed by hand)

A sample key was a row with a unique hash index (~40 bytes on SQLite), a line
frame a row with a unique (function, line) index; inserting a churny
profile's new keys with ``RETURNING`` was most of what its keys cost.
``sample_key_segments`` and ``line_frame_segments`` keep runs of them as
compressed columns (``server.store.columncodec``), dedup answered from memory
(``server.store.samplekeys``, ``server.store.lineframes``). The upgrade copies
the rows in id order, 65,536 to a segment, a chunk at a time so memory stays
bounded; ids do not change, so blobs keep naming the same keys and tree 1 the
same frames. A key without a line leaf (NULL, stored before 0015) keeps none
(-1) until ingest sees it again; ``sample_key_lines`` records such leaves
found later. Ids are handed out past the highest stored one from now on; an
id collected before the upgrade (above every stored one) may be handed out
again, which is harmless: no blob names it, and no process survives the
upgrade with it cached. The downgrade writes the rows back (later line
leaves put in) and sets the id sequences past them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from alembic import op

from server.store import legacylines

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 65_536
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_keys = sa.table(
    "sample_keys",
    sa.column("id", sa.BigInteger),
    sa.column("hash", sa.BigInteger),
    sa.column("node_id", sa.BigInteger),
    sa.column("labelset_id", sa.BigInteger),
    sa.column("line_node_id", sa.BigInteger),
)
_frames = sa.table(
    "line_frames",
    sa.column("id", sa.BigInteger),
    sa.column("function_id", sa.BigInteger),
    sa.column("line", sa.BigInteger),
)
_key_segments = sa.table(
    "sample_key_segments",
    sa.column("first_key", sa.BigInteger),
    sa.column("last_key", sa.BigInteger),
    sa.column("keys", sa.Integer),
    sa.column("data", sa.LargeBinary),
)
_frame_segments = sa.table(
    "line_frame_segments",
    sa.column("first_frame", sa.BigInteger),
    sa.column("last_frame", sa.BigInteger),
    sa.column("frames", sa.Integer),
    sa.column("data", sa.LargeBinary),
)
_lines = sa.table("sample_key_lines", sa.column("key_id", sa.BigInteger), sa.column("line_node_id", sa.BigInteger))


def _chunks(conn: sa.Connection, table: sa.TableClause, columns: list[str]) -> list[npt.NDArray[np.int64]]:
    """The table's rows as integer arrays of ``CHUNK`` rows, in id order (NULL read as -1)."""
    found: list[npt.NDArray[np.int64]] = []
    cursor = -1
    while True:
        picked = [sa.func.coalesce(table.c[name], legacylines.NO_LINES) for name in columns]
        rows = conn.execute(sa.select(*picked).where(table.c.id > cursor).order_by(table.c.id).limit(CHUNK)).all()
        if not rows:
            return found
        part = np.array(rows, dtype=np.int64).reshape(-1, len(columns))
        found.append(part)
        cursor = int(part[-1, 0])


def upgrade() -> None:
    op.create_table(
        "sample_key_segments",
        sa.Column("first_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_key", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("first_key", name=op.f("pk_sample_key_segments")),
    )
    op.create_table(
        "sample_key_lines",
        sa.Column("key_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("line_node_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_sample_key_lines")),
    )
    op.create_table(
        "line_frame_segments",
        sa.Column("first_frame", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_frame", sa.BigInteger(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("first_frame", name=op.f("pk_line_frame_segments")),
    )
    conn = op.get_bind()
    for part in _chunks(conn, _keys, ["id", "hash", "node_id", "labelset_id", "line_node_id"]):
        keys = legacylines.LegacyKeyRows(part[:, 0], part[:, 1], part[:, 2], part[:, 3], part[:, 4])
        conn.execute(
            _key_segments.insert().values(
                first_key=int(keys.ids[0]), last_key=int(keys.ids[-1]), keys=len(keys), data=legacylines.encode(keys)
            )
        )
    for part in _chunks(conn, _frames, ["id", "function_id", "line"]):
        frames = legacylines.FrameRows(part[:, 0], part[:, 1], part[:, 2], np.zeros(part.shape[0], dtype=np.int64))
        conn.execute(
            _frame_segments.insert().values(
                first_frame=int(frames.ids[0]),
                last_frame=int(frames.ids[-1]),
                frames=len(frames),
                data=legacylines.encode_frames(frames),
            )
        )
    op.drop_table("sample_keys")
    op.drop_table("line_frames")


def _restart_sequence(conn: sa.Connection, table: str) -> None:
    """PostgreSQL: the id sequence past the rows written back (SQLite's AUTOINCREMENT follows by itself)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                f" WHERE EXISTS (SELECT 1 FROM {table})"
            )
        )


def _drop_inlined(conn: sa.Connection) -> bool:
    """Before this revision a (function, line) had one frame; since it, an inlined one may have a second
    (pprof's inline marks). If any is stored, the line tree and every key's line leaf are dropped, as
    0015's downgrade drops them, and the profiles stored so far answer "no line data" (ingest rebuilds
    the tree for new profiles); the inlined frames themselves are not written back. Whether any was dropped.
    """
    inlined = False
    for data in conn.execute(sa.select(_frame_segments.c.data)).scalars().all():
        if bool(legacylines.decode_frames(bytes(data)).inlined.any()):
            inlined = True
            break
    if not inlined:
        return False
    op.execute("DELETE FROM stack_segments WHERE tree = 1")
    newest = conn.execute(sa.text("SELECT max(time_ns) FROM profiles")).scalar()
    conn.execute(
        sa.text("UPDATE store_state SET value = :since WHERE key = 'line_data_since_ns'").bindparams(
            since=0 if newest is None else int(newest) + 1
        )
    )
    return True


def downgrade() -> None:
    op.create_table(
        "sample_keys",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.BigInteger(), nullable=False),
        sa.Column("labelset_id", sa.BigInteger(), nullable=False),
        sa.Column("line_node_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_keys")),
        sa.UniqueConstraint("hash", name=op.f("uq_sample_keys_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "line_frames",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("function_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_frames")),
        sa.UniqueConstraint("function_id", "line", name=op.f("uq_line_frames_function_id")),
        sqlite_autoincrement=True,
    )
    conn = op.get_bind()
    fills = legacylines.read_line_fills(conn)
    lines_dropped = _drop_inlined(conn)
    for data in conn.execute(sa.select(_key_segments.c.data).order_by(_key_segments.c.first_key)).scalars().all():
        keys = legacylines.with_line_fills(legacylines.decode(bytes(data)), fills)
        if lines_dropped:
            no_lines = np.full(keys.ids.shape[0], legacylines.NO_LINES, dtype=np.int64)
            keys = legacylines.LegacyKeyRows(keys.ids, keys.hashes, keys.nodes, keys.labelsets, no_lines)
        rows = [
            {
                "id": i,
                "hash": h,
                "node_id": n,
                "labelset_id": ls,
                "line_node_id": None if ln == legacylines.NO_LINES else ln,
            }
            for i, h, n, ls, ln in zip(
                keys.ids.tolist(),
                keys.hashes.tolist(),
                keys.nodes.tolist(),
                keys.labelsets.tolist(),
                keys.line_nodes.tolist(),
                strict=True,
            )
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(_keys.insert(), rows[start : start + 5000])
    for data in conn.execute(sa.select(_frame_segments.c.data).order_by(_frame_segments.c.first_frame)).scalars().all():
        frames = legacylines.decode_frames(bytes(data))
        frames = frames.take(frames.inlined == 0)  # the table before keys (function, line) once: see _drop_inlined
        rows = [
            {"id": i, "function_id": f, "line": line}
            for i, f, line in zip(frames.ids.tolist(), frames.functions.tolist(), frames.lines.tolist(), strict=True)
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(_frames.insert(), rows[start : start + 5000])
    _restart_sequence(conn, "sample_keys")
    _restart_sequence(conn, "line_frames")
    op.drop_table("sample_key_segments")
    op.drop_table("sample_key_lines")
    op.drop_table("line_frame_segments")
