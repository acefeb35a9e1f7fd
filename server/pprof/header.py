"""The per-profile facts stored beside the samples: sample types, period, times, default type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.pprof.columns import ProfileColumns
from server.pprof.kinds import infer_kind_from
from server.pprof.model import ValueType


@dataclass(frozen=True, slots=True)
class Header:
    sample_types: list[ValueType]
    period_type: ValueType | None
    period: int
    time_nanos: int
    duration_nanos: int
    default_sample_type: str

    @classmethod
    def of(cls, columns: ProfileColumns) -> Header:
        strings = columns.strings
        pairs = columns.sample_type.reshape(-1, 2).tolist()
        return cls(
            sample_types=[ValueType(strings[t], strings[u]) for t, u in pairs],
            period_type=ValueType(strings[columns.period_type_type], strings[columns.period_type_unit])
            if columns.has_period_type
            else None,
            period=columns.period,
            time_nanos=columns.time_nanos,
            duration_nanos=columns.duration_nanos,
            default_sample_type=strings[columns.default_sample_type],
        )


def leaf_function_names(columns: ProfileColumns) -> set[str]:
    """Names of the innermost frame of every non-empty sample (validated columns)."""
    counts = np.diff(columns.sample_loc_offsets)
    leaves = columns.sample_locs[columns.sample_loc_offsets[:-1][counts > 0]]
    order = np.argsort(columns.location_id)
    location_pos = order[np.searchsorted(columns.location_id[order], leaves)]
    starts = columns.location_line_offsets[:-1][location_pos]
    has_lines = columns.location_line_offsets[1:][location_pos] > starts
    function_ids = columns.line_function_id[starts[has_lines]]
    forder = np.argsort(columns.function_id)
    function_pos = forder[np.searchsorted(columns.function_id[forder], function_ids)]
    return {columns.strings[i] for i in columns.function_name[function_pos].tolist()}


def infer_kind_of(columns: ProfileColumns, header: Header) -> str | None:
    return infer_kind_from(
        [vt.type for vt in header.sample_types], header.default_sample_type, lambda: leaf_function_names(columns)
    )
