"""alert rules, receivers, states, history and the notification outbox

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    op.create_table(
        "alert_receivers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("webhook_url", sa.String(length=2048), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_receivers")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_receivers_name")),
    )
    op.create_table(
        "alert_states",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("rule_name", sa.String(length=256), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("active_ns", sa.BigInteger(), nullable=True),
        sa.Column("fired_ns", sa.BigInteger(), nullable=True),
        sa.Column("resolved_ns", sa.BigInteger(), nullable=True),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_states")),
        sa.UniqueConstraint("rule_name", "fingerprint", name=op.f("uq_alert_states_rule_name")),
    )
    op.create_table(
        "alert_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("rule_name", sa.String(length=256), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_history")),
    )
    op.create_index("ix_alert_history_time", "alert_history", ["time_ns"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("receiver", sa.String(length=256), nullable=False),
        sa.Column("rule_name", sa.String(length=256), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("starts_ns", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_ns", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until_ns", sa.BigInteger(), nullable=False),
        sa.Column("sent_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
        sa.UniqueConstraint(
            "receiver", "rule_name", "fingerprint", "starts_ns", "status", name=op.f("uq_alert_outbox_receiver")
        ),
    )
    op.create_index("ix_alert_outbox_outcome_next", "alert_outbox", ["outcome", "next_ns"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_outcome_next", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_index("ix_alert_history_time", table_name="alert_history")
    op.drop_table("alert_history")
    op.drop_table("alert_states")
    op.drop_table("alert_receivers")
    op.drop_table("alert_rules")
