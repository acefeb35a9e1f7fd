"""line granularity: (function, line) frames, and each sample key's leaf in their stack tree

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 (reviewed by hand)

``line_frames`` holds each (function, line) pair once; its ids are the frames of
stack tree 1 (segments in ``stack_segments`` with ``tree = 1``). A sample key's
identity already includes its lines, so the key gets one more column,
``line_node_id``, its leaf in that tree; profile blobs do not change. Keys
stored before this migration have no line leaf (NULL) until ingest sees them
again. ``store_state['line_data_since_ns']`` is just past the newest profile
stored before the upgrade: line queries over older profiles whose keys still
lack line leaves answer "no line data before" that time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SINCE = "line_data_since_ns"
_state = sa.table("store_state", sa.column("key", sa.String), sa.column("value", sa.BigInteger))


def upgrade() -> None:
    op.create_table(
        "line_frames",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("function_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_frames")),
        sa.UniqueConstraint("function_id", "line", name=op.f("uq_line_frames_function_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("sample_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_node_id", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    newest = conn.execute(sa.text("SELECT max(time_ns) FROM profiles")).scalar()
    op.bulk_insert(_state, [{"key": SINCE, "value": 0 if newest is None else int(newest) + 1}])


def downgrade() -> None:
    op.execute(f"DELETE FROM store_state WHERE key = '{SINCE}'")
    op.execute("DELETE FROM stack_segments WHERE tree = 1")
    with op.batch_alter_table("sample_keys", schema=None) as batch_op:
        batch_op.drop_column("line_node_id")
    op.drop_table("line_frames")
