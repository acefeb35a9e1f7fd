"""sample keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sample_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.BigInteger(), nullable=False),
        sa.Column("labelset_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_keys")),
        sa.UniqueConstraint("hash", name=op.f("uq_sample_keys_hash")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("sample_keys")
