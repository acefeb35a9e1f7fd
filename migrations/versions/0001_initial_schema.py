"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 (reviewed by hand)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("system_name", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("start_line", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_functions")),
        sa.UniqueConstraint("hash", name=op.f("uq_functions_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sample_labelsets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("num_labels", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_labelsets")),
        sa.UniqueConstraint("hash", name=op.f("uq_sample_labelsets_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "series",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("labels_hash", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("kind", "labels_hash", name=op.f("uq_series_kind")),
    )
    op.create_table(
        "profile_shapes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("period_type", sa.String(length=128), nullable=False),
        sa.Column("sample_types", sa.Text(), nullable=False),
        sa.Column("default_sample_type", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_shapes")),
        sa.UniqueConstraint("hash", name=op.f("uq_profile_shapes_hash")),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shape_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("duration_ns", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_profiles_series_id_series"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["shape_id"], ["profile_shapes.id"], name=op.f("fk_profiles_shape_id_profile_shapes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_series_time", ["series_id", "time_ns"], unique=False)

    op.create_table(
        "sample_labels",
        sa.Column("labelset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["labelset_id"],
            ["sample_labelsets.id"],
            name=op.f("fk_sample_labels_labelset_id_sample_labelsets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("labelset_id", "name", "value", name=op.f("pk_sample_labels")),
    )
    with op.batch_alter_table("sample_labels", schema=None) as batch_op:
        batch_op.create_index("ix_sample_labels_name_value", ["name", "value"], unique=False)

    op.create_table(
        "series_labels",
        sa.Column("series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_series_labels_series_id_series"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("series_id", "name", name=op.f("pk_series_labels")),
    )
    with op.batch_alter_table("series_labels", schema=None) as batch_op:
        batch_op.create_index("ix_series_labels_name_value", ["name", "value"], unique=False)

    op.create_table(
        "stack_nodes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("function_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("recursive", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["functions.id"], name=op.f("fk_stack_nodes_function_id_functions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stack_nodes")),
        sa.UniqueConstraint("parent_id", "function_id", name=op.f("uq_stack_nodes_parent_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "profile_blobs",
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_profile_blobs_profile_id_profiles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_profile_blobs")),
    )


def downgrade() -> None:
    op.drop_table("profile_blobs")
    op.drop_table("stack_nodes")
    with op.batch_alter_table("series_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_series_labels_name_value")

    op.drop_table("series_labels")
    with op.batch_alter_table("sample_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_sample_labels_name_value")

    op.drop_table("sample_labels")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_series_time")

    op.drop_table("profiles")
    op.drop_table("profile_shapes")
    op.drop_table("series")
    op.drop_table("sample_labelsets")
    op.drop_table("functions")
