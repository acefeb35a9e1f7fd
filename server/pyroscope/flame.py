"""Stackyard's flame graph layout as Pyroscope's ``FlameGraph`` and ``FlameGraphDiff`` messages.

Stackyard's levels already use Pyroscope's encoding (4 integers per node:
gap since the previous node of the level ends, total, self, name index; the
root alone on level 0, named ``total`` at index 0), so a single graph only
changes container. A diff is laid out with ``per_side``: 7 integers per node,
each side's gap measured on its own axis. Nodes of value zero are left out
(``drop_empty``): Grafana finds a node's parent by position, which a
zero-width node would make ambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from server.pyroscope.proto.querier.v1 import querier_pb2
from server.query.flamegraph import FlameGraph


def _max_self(levels: Sequence[Sequence[int]], stride: int, slots: tuple[int, ...]) -> int:
    """The largest self value of any node drawn, ``other`` nodes included, as Pyroscope reports it."""
    return int(max((max(level[slot::stride], default=0) for level in levels for slot in slots), default=0))


def _integers(graph: FlameGraph) -> list[list[int]]:
    """The levels, integers already: Pyroscope's graphs are sums (divisor 1), never ``avg``."""
    return cast(list[list[int]], graph.levels)


def single(graph: FlameGraph) -> querier_pb2.FlameGraph:
    levels = _integers(graph)
    message = querier_pb2.FlameGraph(names=graph.names, total=int(graph.side_totals[0]))
    for level in levels:
        message.levels.add().values.extend(level)
    message.max_self = _max_self(levels, 4, (2,))
    return message


def diff(graph: FlameGraph) -> querier_pb2.FlameGraphDiff:
    """``graph`` from :func:`server.query.diff.diff_flamegraph` with ``per_side``: the base is the left side."""
    levels = _integers(graph)
    left, right = (int(v) for v in graph.side_totals)
    message = querier_pb2.FlameGraphDiff(names=graph.names, total=left + right, leftTicks=left, rightTicks=right)
    for level in levels:
        message.levels.add().values.extend(level)
    message.max_self = _max_self(levels, 7, (2, 5))
    return message


def empty() -> querier_pb2.FlameGraph:
    """No data: the root alone, as Pyroscope answers (Grafana reads level 0 unconditionally)."""
    return querier_pb2.FlameGraph(names=["total"], levels=[querier_pb2.Level(values=[0, 0, 0, 0])])


def empty_diff() -> querier_pb2.FlameGraphDiff:
    return querier_pb2.FlameGraphDiff(names=["total"], levels=[querier_pb2.Level(values=[0, 0, 0, 0, 0, 0, 0])])
