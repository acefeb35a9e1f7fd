"""stack prefix-tree nodes stored as compressed segments instead of one row each

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 (reviewed by hand)

A row plus its unique-index entry per node was 93-95 % of a high-churn
store (docs/churn.md). ``stack_segments`` keeps runs of nodes as compressed
columns (layout: ``server.store.stackcodec``, version 1) and dedup is
answered from memory (``server.store.stacks``). The upgrade copies the
nodes in id order, 65,536 to a segment, reading a chunk at a time so memory
stays bounded; ids do not change, so sample keys keep pointing at the same
nodes. The downgrade writes the rows back (depth recomputed from parents).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

from server.store import stackcodec

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 65_536
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_segments = sa.table(
    "stack_segments",
    sa.column("tree", sa.SmallInteger),
    sa.column("first_node", sa.BigInteger),
    sa.column("last_node", sa.BigInteger),
    sa.column("nodes", sa.Integer),
    sa.column("data", sa.LargeBinary),
)
_nodes = sa.table(
    "stack_nodes",
    sa.column("id", sa.BigInteger),
    sa.column("parent_id", sa.BigInteger),
    sa.column("function_id", sa.BigInteger),
    sa.column("depth", sa.Integer),
    sa.column("recursive", sa.Boolean),
)


def upgrade() -> None:
    op.create_table(
        "stack_segments",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("first_node", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_node", sa.BigInteger(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tree", "first_node", name=op.f("pk_stack_segments")),
    )
    conn = op.get_bind()
    cursor = 0
    while True:
        rows = conn.execute(
            sa.select(_nodes.c.id, _nodes.c.parent_id, _nodes.c.function_id, _nodes.c.recursive)
            .where(_nodes.c.id > cursor)
            .order_by(_nodes.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            break
        table = np.array([(int(a), int(b), int(c), int(bool(d))) for a, b, c, d in rows], dtype=np.int64)
        segment = stackcodec.Segment(table[:, 0], table[:, 1], table[:, 2], table[:, 3].astype(bool))
        conn.execute(
            _segments.insert().values(
                tree=0,
                first_node=int(table[0, 0]),
                last_node=int(table[-1, 0]),
                nodes=len(segment),
                data=stackcodec.encode(segment),
            )
        )
        cursor = int(table[-1, 0])
    op.drop_table("stack_nodes")


def downgrade() -> None:
    op.create_table(
        "stack_nodes",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("function_id", Id, nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("recursive", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["function_id"], ["functions.id"], name=op.f("fk_stack_nodes_function_id_functions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stack_nodes")),
        sa.UniqueConstraint("parent_id", "function_id", name=op.f("uq_stack_nodes_parent_id")),
        sqlite_autoincrement=True,
    )
    conn = op.get_bind()
    depth: dict[int, int] = {0: 0}  # the rows go back one at a time; their depths follow from their parents
    data = conn.execute(
        sa.select(_segments.c.data).where(_segments.c.tree == 0).order_by(_segments.c.first_node)
    ).scalars()
    for blob in data:
        segment = stackcodec.decode(bytes(blob))
        rows = []
        for node, parent, function, recursive in zip(
            segment.ids.tolist(),
            segment.parents.tolist(),
            segment.frames.tolist(),
            segment.recursive.tolist(),
            strict=True,
        ):
            depth[node] = depth[parent] + 1
            rows.append(
                {"id": node, "parent_id": parent, "function_id": function, "depth": depth[node], "recursive": recursive}
            )
        for start in range(0, len(rows), 1000):
            conn.execute(_nodes.insert(), rows[start : start + 1000])
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('stack_nodes', 'id'), (SELECT coalesce(max(id), 0) + 1"
                " FROM stack_nodes), false)"
            )
        )
    op.drop_table("stack_segments")
