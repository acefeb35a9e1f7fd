"""rollup blobs apart from rollup rows; dirty hours and a scan watermark for rollup builds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 (reviewed by hand)

Trend queries read many rollup rows and none of their samples; with the
samples inline every such read dragged them off disk. The blobs move to
``rollup_blobs`` (one row per rollup, deleted with it), like
``profile_blobs`` beside ``profiles``. ``rollup_dirty`` and the
``rollup_scan_ns`` watermark let the rollup job scan only new raw profiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The foreign key comes last: SQLite drops a column by re-creating the table, and dropping the
    # old ``rollups`` would cascade into ``rollup_blobs`` if the key were already there.
    op.create_table(
        "rollup_blobs",
        sa.Column("rollup_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("rollup_id", name=op.f("pk_rollup_blobs")),
    )
    op.execute("INSERT INTO rollup_blobs (rollup_id, data) SELECT id, data FROM rollups")
    with op.batch_alter_table("rollups", schema=None) as batch_op:
        batch_op.drop_column("data")
    with op.batch_alter_table("rollup_blobs", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_rollup_blobs_rollup_id_rollups"), "rollups", ["rollup_id"], ["id"], ondelete="CASCADE"
        )
    op.create_table(
        "rollup_dirty",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("series_id", sa.BigInteger(), nullable=False),
        sa.Column("bucket_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_dirty")),
    )
    op.bulk_insert(
        sa.table("store_state", sa.column("key", sa.String), sa.column("value", sa.BigInteger)),
        [{"key": "rollup_scan_ns", "value": 0}],
    )


def downgrade() -> None:
    op.execute("DELETE FROM store_state WHERE key = 'rollup_scan_ns'")
    op.drop_table("rollup_dirty")
    with op.batch_alter_table("rollups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    op.execute("UPDATE rollups SET data = (SELECT data FROM rollup_blobs WHERE rollup_blobs.rollup_id = rollups.id)")
    op.drop_table("rollup_blobs")
