"""One function's flat and cum over time: when did it start costing more?

All profiles of the range are read once (hourly rollups stand in for whole
hours when the step allows), each row is assigned its step, and flat and
cum are summed per step with masks over the stack tree: flat where the
row's leaf frame is the function, cum where the function is anywhere on the
row's stack (once, however often it recurses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.errors import InvalidParameter, NotFound
from server.query import _filters
from server.query.aggregate import matching_series, resolve_sample, sample_columns
from server.query.overflow import SumGuard
from server.query.plan import plan
from server.query.request import ProfileQuery
from server.query.timeseries import choose_step, series_interval_ns
from server.settings import Settings
from server.store.repository import Store
from server.store.rollups import HOUR_S, NS

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FunctionHistory:
    """One function's ``[unix seconds of the step's start, flat, cum]`` per step with profiles."""

    name: str
    sample_type: str
    unit: str
    step_s: float
    aggregation: str
    points: list[list[float]]


def function_history(
    store: Store, settings: Settings, query: ProfileQuery, name: str, step: str | None, aggregation: str = "sum"
) -> FunctionHistory:
    if aggregation not in ("sum", "avg"):
        raise InvalidParameter("aggregation", f"{aggregation!r} is not sum or avg")
    functions = store.functions.ids_named(name)
    if not functions:
        raise NotFound(f"no function named {name!r} has been stored")
    start_ns, end_ns = query.start_ns, query.end_ns + 1
    series = [s.id for s in matching_series(store, query)]
    interval_ns = None if step else series_interval_ns(store, series, start_ns, end_ns)
    step_ns = choose_step(start_ns, end_ns, step, settings.max_timeseries_points, interval_ns)
    whole_hours = step_ns % (HOUR_S * NS) == 0 and start_ns % (HOUR_S * NS) == 0
    parts = plan(
        store,
        series,
        start_ns,
        end_ns,
        settings.max_query_profiles,
        rollups=query.rollups and whole_hours,
        max_width_s=HOUR_S,
    )
    sample_type, unit = resolve_sample(parts, query.sample)
    keys: list[IntArray] = []
    values: list[IntArray] = []
    buckets: list[IntArray] = []
    counts: dict[int, int] = {}
    guards: dict[int, SumGuard] = {}  # each point is its own sum
    for part, part_keys, part_values in sample_columns(store, parts, sample_type):
        bucket = (part.time_ns - start_ns) // step_ns
        guards.setdefault(bucket, SumGuard(sample_type)).add(part_values)
        counts[bucket] = counts.get(bucket, 0) + part.profiles
        keys.append(part_keys)
        values.append(part_values)
        buckets.append(np.full(part_keys.shape[0], bucket, dtype=np.int64))
    points: list[list[float]] = []
    if keys:
        all_keys = np.concatenate(keys)
        nodes, _ = store.sample_identities(all_keys)
        flat_mask, cum_mask = _masks(store, nodes, np.array(sorted(functions), dtype=np.int64))
        row_values = np.concatenate(values)
        row_buckets = np.concatenate(buckets)
        size = int(row_buckets.max()) + 1
        flat = np.zeros(size, dtype=np.int64)
        cum = np.zeros(size, dtype=np.int64)
        np.add.at(flat, row_buckets[flat_mask], row_values[flat_mask])
        np.add.at(cum, row_buckets[cum_mask], row_values[cum_mask])
        for bucket in sorted(counts):
            divisor = counts[bucket] if aggregation == "avg" else 1
            time_s = (start_ns + bucket * step_ns) / NS
            points.append([time_s, _number(int(flat[bucket]), divisor), _number(int(cum[bucket]), divisor)])
    return FunctionHistory(name, sample_type, unit, step_ns / NS, aggregation, points)


def _number(value: int, divisor: int) -> float:
    return value if divisor == 1 else value / divisor


def _masks(store: Store, nodes: IntArray, functions: IntArray) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per row: is the leaf the function (flat), is the function on the stack (cum)."""
    stacks = store.stacks
    closure = stacks.ancestors_closure(nodes)
    is_function = np.isin(stacks.function[closure], functions)
    parent_ids = stacks.parent[closure].astype(np.int64)  # the tree's column is uint32
    parent = np.where(parent_ids > 0, np.searchsorted(closure, parent_ids), -1)
    # In id order a parent comes before its children: one pass carries a match down every path.
    bits = is_function.astype(np.uint8)
    _filters.on_paths(parent, bits)
    contains = bits != 0
    index = np.searchsorted(closure, nodes)
    real = nodes > 0
    flat = np.zeros(nodes.shape[0], dtype=bool)
    cum = np.zeros(nodes.shape[0], dtype=bool)
    flat[real] = is_function[index[real]]
    cum[real] = contains[index[real]]
    return flat, cum
