"""idempotency keys on profiles

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column and a unique index need no table rebuild on SQLite; NULLs never collide.
    op.add_column("profiles", sa.Column("idempotency_key", sa.String(length=64), nullable=True))
    op.create_index("uq_profiles_idempotency_key", "profiles", ["idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_profiles_idempotency_key", table_name="profiles")
    op.drop_column("profiles", "idempotency_key")
