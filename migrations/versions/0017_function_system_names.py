"""a function's system name is stored only when it differs from its name

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 (reviewed by hand)

Go writes every function's ``system_name`` equal to its ``name``; stored twice,
the copy was about a third of the ``functions`` table (docs/storage-history.md). The
column becomes nullable and NULL means "the same as ``name``"; readers take
``coalesce(system_name, name)``. The content hash that deduplicates functions
is computed from the full (name, system name, file) triple as before, so ids
and dedup do not change.

On SQLite the column's NOT NULL can only go by copying the table (Alembic's
batch mode): the copy keeps AUTOINCREMENT, and ``sqlite_sequence`` is set back
to at least what it was, so no id garbage collection freed is handed out again.
Sample blobs need no migration: their version byte tells the layouts apart,
and version 2 blobs stay readable beside version 3 ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sequence() -> int | None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return None
    found = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'functions'")).scalar()
    return None if found is None else int(found)


def _restore(sequence: int | None) -> None:
    if sequence is not None:
        op.execute(
            sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'functions'").bindparams(seq=sequence)
        )


def _nullable(nullable: bool) -> None:
    sequence = _sequence()
    with op.batch_alter_table("functions", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.alter_column("system_name", existing_type=sa.Text(), nullable=nullable)
    _restore(sequence)


def upgrade() -> None:
    _nullable(True)
    op.execute("UPDATE functions SET system_name = NULL WHERE system_name = name")


def downgrade() -> None:
    op.execute("UPDATE functions SET system_name = name WHERE system_name IS NULL")
    _nullable(False)
