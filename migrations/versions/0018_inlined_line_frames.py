"""line frames tell inlined frames apart, for pprof's "(inline)" marks at line granularity

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 (reviewed by hand)

``go tool pprof -top -lines`` marks a row ``(inline)`` when every call into it was
inlined (the frame was a location's line entry other than its last) and
``(partial-inline)`` when some were. The mark is not part of pprof's key, so
rows do not change, but which calls were inlined is known only at ingest:
``line_frames`` gains ``inlined`` (0 or 1) and its unique key becomes
(function, line, inlined), so one (function, line) may have two frames.
Frames stored before this migration are all 0: stacks first stored before it
show no mark until they are stored again from new keys.

On SQLite the unique constraint changes by copying the table (Alembic's batch
mode): the copy keeps AUTOINCREMENT, and ``sqlite_sequence`` is set back to at
least what it was, so no id garbage collection freed is handed out again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE = "uq_line_frames_function_id"


def _sequence() -> int | None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return None
    found = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'line_frames'")).scalar()
    return None if found is None else int(found)


def _restore(sequence: int | None) -> None:
    if sequence is not None:
        op.execute(
            sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'line_frames'").bindparams(
                seq=sequence
            )
        )


def upgrade() -> None:
    sequence = _sequence()
    with op.batch_alter_table("line_frames", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.add_column(sa.Column("inlined", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.drop_constraint(UNIQUE, type_="unique")
        batch_op.create_unique_constraint(UNIQUE, ["function_id", "line", "inlined"])
    _restore(sequence)


def downgrade() -> None:
    # Inlined frames become their (function, line)'s other frame: tree 1 and the keys' line leaves are
    # rebuilt by ingest, so they are dropped, as 0015's downgrade does, and keys answer "no line data".
    op.execute("DELETE FROM stack_segments WHERE tree = 1")
    op.execute("UPDATE sample_keys SET line_node_id = NULL")
    op.execute("DELETE FROM line_frames WHERE inlined = 1")
    sequence = _sequence()
    with op.batch_alter_table("line_frames", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint(UNIQUE, type_="unique")
        batch_op.create_unique_constraint(UNIQUE, ["function_id", "line"])
        batch_op.drop_column("inlined")
    _restore(sequence)
