"""goroutine dumps

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-27 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "goroutine_stacks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("function", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goroutine_stacks")),
        sa.UniqueConstraint("hash", name=op.f("uq_goroutine_stacks_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "goroutine_dumps",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("goroutines", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_goroutine_dumps_series_id_series"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goroutine_dumps")),
        sa.UniqueConstraint("series_id", "time_ns", name=op.f("uq_goroutine_dumps_series_id")),
    )
    op.create_table(
        "goroutine_groups",
        sa.Column("dump_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stack_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.String(length=128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("max_wait_minutes", sa.Integer(), nullable=False),
        sa.Column("median_wait_minutes", sa.Float(), nullable=False),
        sa.Column("locked", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dump_id"],
            ["goroutine_dumps.id"],
            name=op.f("fk_goroutine_groups_dump_id_goroutine_dumps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stack_id"], ["goroutine_stacks.id"], name=op.f("fk_goroutine_groups_stack_id_goroutine_stacks")
        ),
        sa.PrimaryKeyConstraint("dump_id", "stack_id", "state", name=op.f("pk_goroutine_groups")),
    )
    op.create_index("ix_goroutine_groups_stack_id", "goroutine_groups", ["stack_id"])


def downgrade() -> None:
    op.drop_index("ix_goroutine_groups_stack_id", table_name="goroutine_groups")
    op.drop_table("goroutine_groups")
    op.drop_table("goroutine_dumps")
    op.drop_table("goroutine_stacks")
