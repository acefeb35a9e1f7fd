"""functions stored as compressed segments instead of one row each

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 (reviewed by hand)

A function was a row with a unique index on a hash of its strings, its file
name repeated in every row: on PostgreSQL the largest relation of a store's
first day (docs/storage-history.md). ``function_segments`` keeps runs of functions as
a compressed block each (``server.store.symbols``), dedup answered from
memory as for line frames. The upgrade copies the rows in id order,
65,536 to a segment, a chunk at a time so memory stays bounded; ids do not
change, so both trees and the line frames keep naming the same functions.
Ids are handed out past the highest stored one from now on; an id collected
before the upgrade (above every stored one) may be handed out again, which is
harmless: nothing stored names it, and no process survives the upgrade with
it cached. The downgrade writes the rows back with their content hash (the
one the unique index was on) and sets the id sequence past them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

from server.store import symbols
from server.store.keys import hash64

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_functions = sa.table(
    "functions",
    sa.column("id", sa.BigInteger),
    sa.column("hash", sa.BigInteger),
    sa.column("name", sa.Text),
    sa.column("system_name", sa.Text),
    sa.column("filename", sa.Text),
    sa.column("start_line", sa.BigInteger),
)
_segments = sa.table(
    "function_segments",
    sa.column("first_function", sa.BigInteger),
    sa.column("last_function", sa.BigInteger),
    sa.column("functions", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def upgrade() -> None:
    op.create_table(
        "function_segments",
        sa.Column("first_function", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_function", sa.BigInteger(), nullable=False),
        sa.Column("functions", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("first_function", name=op.f("pk_function_segments")),
    )
    conn = op.get_bind()
    table = _functions.c
    cursor = 0
    while True:
        rows = conn.execute(
            sa.select(table.id, table.name, sa.func.coalesce(table.system_name, table.name), table.filename)
            .add_columns(table.start_line)
            .where(table.id > cursor)
            .order_by(table.id)
            .limit(symbols.SEGMENT_FUNCTIONS)
        ).all()
        if not rows:
            break
        part = symbols.FunctionRows(
            np.array([int(row[0]) for row in rows], dtype=np.int64),
            [str(row[1]) for row in rows],
            [str(row[2]) for row in rows],
            [str(row[3]) for row in rows],
            np.array([int(row[4] or 0) for row in rows], dtype=np.int64),
        )
        conn.execute(
            _segments.insert().values(
                first_function=int(part.ids[0]),
                last_function=int(part.ids[-1]),
                functions=len(part),
                data=symbols.encode(part),
            )
        )
        cursor = int(rows[-1][0])
    op.drop_table("functions")


def downgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("system_name", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("start_line", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_functions")),
        sa.UniqueConstraint("hash", name=op.f("uq_functions_hash")),
        sqlite_autoincrement=True,
    )
    conn = op.get_bind()
    segments = _segments.c
    for data in conn.execute(sa.select(segments.data).order_by(segments.first_function)).scalars().all():
        part = symbols.decode(bytes(data))
        rows = [
            {
                "id": fid,
                "hash": hash64((name, system, filename)),
                "name": name,
                "system_name": None if system == name else system,  # NULL: the same as the name (0017)
                "filename": filename,
                "start_line": line,
            }
            for fid, name, system, filename, line in zip(
                part.ids.tolist(), part.names, part.system_names, part.filenames, part.start_lines.tolist(), strict=True
            )
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(_functions.insert(), rows[start : start + 5000])
    if conn.dialect.name == "postgresql":  # SQLite's AUTOINCREMENT follows the rows written back by itself
        conn.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('functions', 'id'), (SELECT max(id) FROM functions))"
                " WHERE EXISTS (SELECT 1 FROM functions)"
            )
        )
    op.drop_table("function_segments")
