"""A stored stack read back as names, for tests that check what dedup stored against the profile's samples."""

from __future__ import annotations

import numpy as np

from server.store.dedup import Dedup
from server.store.repository import Store
from server.store.stacks import ROOT


def stack_names(dedup: Dedup, store: Store, node: int) -> list[str]:
    """Function names from ``node`` of the function tree up to its root: leaf first, as a sample lists its frames."""
    dedup.stacks.ensure(np.array([node], dtype=np.int64))
    functions: list[int] = []
    while node != ROOT:
        functions.append(int(dedup.stacks.function[node]))
        node = int(dedup.stacks.parent[node])
    names = store.functions.names(functions)
    return [names[f] for f in functions]
