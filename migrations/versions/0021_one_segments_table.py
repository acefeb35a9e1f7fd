"""the four segment tables become one, ``segments``, keyed by (kind, first id)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 (reviewed by hand)

Stack nodes, sample keys, line frames and functions were each appended as
compressed segments to a table of their own, four tables of the same shape
(first id, last id, count, bytes). On PostgreSQL each table that grows past a
page carries a 24 KB free-space map, and past 2 KB a value goes to the
table's TOAST relation, which has a map and an index of its own: a steady
service's first day paid for four of each, ~890 bytes a profile of its 2,503
(docs/storage-history.md). One table pays once.

Rows are copied as they are (``INSERT ... SELECT``, so nothing passes through
Python): the bytes' layouts do not change, and each kind keeps its ids. The
stack trees keep their tree numbers as their kinds (0 and 1); sample keys are
kind 2, line frames 3, functions 4 (``server.store.models.SegmentKind``). The
downgrade copies each kind back to its table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: kind -> (old table, its first-id, last-id and count columns); the stack trees share one table, told
#: apart by ``tree``, which becomes the kind.
_SAMPLE_KEYS = 2
_LINE_FRAMES = 3
_FUNCTIONS = 4
_TABLES = {
    _SAMPLE_KEYS: ("sample_key_segments", "first_key", "last_key", "keys"),
    _LINE_FRAMES: ("line_frame_segments", "first_frame", "last_frame", "frames"),
    _FUNCTIONS: ("function_segments", "first_function", "last_function", "functions"),
}
_TREES = (0, 1)  # the only tree numbers ever written


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("first_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "first_id", name=op.f("pk_segments")),
    )
    op.execute(
        "INSERT INTO segments (kind, first_id, last_id, items, data)"
        " SELECT tree, first_node, last_node, nodes, data FROM stack_segments"
    )
    for kind, (table, first, last, count) in _TABLES.items():
        op.execute(
            "INSERT INTO segments (kind, first_id, last_id, items, data)"
            f" SELECT {kind}, {first}, {last}, {count}, data FROM {table}"
        )
    op.drop_table("stack_segments")
    for table, *_ in _TABLES.values():
        op.drop_table(table)


def downgrade() -> None:
    op.create_table(
        "stack_segments",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("first_node", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_node", sa.BigInteger(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tree", "first_node", name=op.f("pk_stack_segments")),
    )
    for table, first, last, count in _TABLES.values():
        op.create_table(
            table,
            sa.Column(first, sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column(last, sa.BigInteger(), nullable=False),
            sa.Column(count, sa.Integer(), nullable=False),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint(first, name=op.f(f"pk_{table}")),
        )
    op.execute(
        "INSERT INTO stack_segments (tree, first_node, last_node, nodes, data)"
        " SELECT kind, first_id, last_id, items, data FROM segments"
        f" WHERE kind IN ({', '.join(map(str, _TREES))})"
    )
    for kind, (table, first, last, count) in _TABLES.items():
        op.execute(
            f"INSERT INTO {table} ({first}, {last}, {count}, data)"
            f" SELECT first_id, last_id, items, data FROM segments WHERE kind = {kind}"
        )
    op.drop_table("segments")
