"""the profiles' idempotency-key index holds only the profiles that have a key

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 (reviewed by hand)

Scraped profiles, and pushes without an ``Idempotency-Key``, have none
(NULL): every one of them still had an entry in ``ix_profiles_idempotency_key``,
which is only ever searched for a key (``=`` and ``IN``, which imply NOT NULL,
so both databases use the partial index for them). On PostgreSQL that was a
page of every time partition's index a day of a steady service (23 bytes a
profile on the first day, docs/storage-history.md); on SQLite an entry a profile for
good. The index now holds only the rows with a key. On PostgreSQL the index
of the partitioned table is made again, which makes every partition's again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_profiles_idempotency_key", table_name="profiles")
    op.create_index(
        "ix_profiles_idempotency_key", "profiles", ["idempotency_key"], postgresql_where=_KEYED, sqlite_where=_KEYED
    )


def downgrade() -> None:
    op.drop_index("ix_profiles_idempotency_key", table_name="profiles")
    op.create_index("ix_profiles_idempotency_key", "profiles", ["idempotency_key"])
