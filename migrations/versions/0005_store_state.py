"""store state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_state")),
    )
    op.bulk_insert(
        sa.table("store_state", sa.column("key", sa.String), sa.column("value", sa.BigInteger)),
        [{"key": "gc_epoch", "value": 0}],
    )


def downgrade() -> None:
    op.drop_table("store_state")
