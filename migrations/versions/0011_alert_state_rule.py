"""alert states name the rule they belong to by its creation, not only its name

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so no table rebuild on SQLite; states written before it belong to whatever rule has the name.
    op.add_column("alert_states", sa.Column("rule_created_ns", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_column("rule_created_ns")
