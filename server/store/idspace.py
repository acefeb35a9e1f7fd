"""How much of each stored kind's id space is used: the highest id handed out, and the rows still stored.

Functions, stack nodes, sample keys and line vectors get ids in increasing order, each past every id of its
kind written before (:mod:`server.store.appends`), and garbage collection deletes rows leaving gaps
(:mod:`server.store.gc`). So it is the highest id, not the rows stored, that meets a limit. The stack tree's
node ids are 32-bit (its C index keeps them so, 8 bytes a node), and a service whose stacks rarely repeat hands
out ~50,000 of them a capture: at one capture every 10 s that is the whole space in about ten days
(docs/operations.md). So a collection renumbers the tree's live nodes once the highest has passed half of the
space (:mod:`server.store.renumber`): its highest id then drops to the nodes stored. Function ids are the tree's
frames, below 2**31, and never renumbered. Sample keys and line vectors are 64-bit.

Read from the ``segments`` rows (one aggregate over a few thousand rows), so the answer is the store's, not
one process's: another replica may have appended since this one loaded its tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from server.store.models import SegmentKind, SegmentRow
from server.store.stacks import FRAME_LIMIT, NODE_LIMIT

#: The ids each written kind can hand out, by the name the metrics use.
LIMITS = {
    SegmentKind.FUNCTION_STACKS: NODE_LIMIT,
    SegmentKind.FUNCTIONS: FRAME_LIMIT,
    SegmentKind.SAMPLE_KEYS: 1 << 63,
    SegmentKind.LINE_VECTORS: 1 << 63,
}


@dataclass(frozen=True, slots=True)
class IdUse:
    """One kind's ids: the highest handed out (0: none yet), the rows stored, and how many ids it can have."""

    kind: str
    highest: int
    stored: int
    limit: int


def id_use(engine: Engine) -> list[IdUse]:
    """Every written kind's use of its id space, in the order of :data:`LIMITS` (kinds with no rows yet at 0)."""
    query = (
        select(SegmentRow.kind, func.max(SegmentRow.last_id), func.sum(SegmentRow.items))
        .where(SegmentRow.kind.in_([int(kind) for kind in LIMITS]))
        .group_by(SegmentRow.kind)
    )
    with engine.connect() as conn:
        found = {int(kind): (int(highest or 0), int(stored or 0)) for kind, highest, stored in conn.execute(query)}
    return [IdUse(kind.name.lower(), *found.get(int(kind), (0, 0)), limit) for kind, limit in LIMITS.items()]
