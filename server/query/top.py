"""Per-function flat and cum, computed exactly as ``go tool pprof -top`` does.

flat: the values of samples whose leaf frame is the function. cum: the values
of samples whose stack holds the function at least once; a recursive function
counts once per sample, which the tree gives us for free: summing the totals of
the nodes that are not below another node of the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.query.grouping import distinct_inverse
from server.query.tree import CallTree

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TopRow:
    function_id: int
    flat: int
    cum: int


def flat_and_cum(tree: CallTree) -> tuple[IntArray, IntArray, IntArray]:
    """Distinct function ids, and their flat and cum as (functions, columns) matrices."""
    functions, index = distinct_inverse(tree.function)
    columns = tree.selfs.shape[1]
    flat = np.zeros((functions.shape[0], columns), dtype=np.int64)
    cum = np.zeros((functions.shape[0], columns), dtype=np.int64)
    np.add.at(flat, index, tree.selfs)
    outermost = ~tree.recursive
    np.add.at(cum, index[outermost], tree.totals[outermost])
    return functions, flat, cum


def top_rows(tree: CallTree) -> list[TopRow]:
    if len(tree) == 0:
        return []
    functions, flat_matrix, cum_matrix = flat_and_cum(tree)
    flat, cum = flat_matrix[:, 0], cum_matrix[:, 0]
    present = (flat != 0) | (cum != 0)
    return [
        TopRow(int(f), int(fl), int(c))
        for f, fl, c in zip(functions[present], flat[present], cum[present], strict=True)
    ]


def sort_rows(rows: list[TopRow], names: dict[int, str], by: str = "flat") -> list[TopRow]:
    """pprof's order: largest |flat| first, ties by name; ``by="cum"`` sorts on cum instead."""
    if by == "cum":
        return sorted(rows, key=lambda r: (-abs(r.cum), names.get(r.function_id, ""), -abs(r.flat)))
    return sorted(rows, key=lambda r: (-abs(r.flat), names.get(r.function_id, ""), -abs(r.cum)))
