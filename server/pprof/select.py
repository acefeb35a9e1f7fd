"""Some of a profile's sample types, as a profile of its own: one upload, stored as two kinds.

Why: a heap profile carries two kinds of numbers at once. ``inuse_*`` are a
snapshot (what is held now); ``alloc_*`` count allocations, since the
process started in Go's own heap profile, or over the last interval in a
delta heap profile such as the pyroscope-go SDK uploads. Stackyard keeps
snapshots under the ``heap`` kind and allocation deltas under ``allocs``, so
such an upload is stored twice, each time with only the sample types that
kind means.

Works on validated columns and keeps them consistent: samples whose kept
values are all zero are dropped (with their locations and labels), since
they add nothing to any total and ``go tool pprof`` shows nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

import numpy as np

from server.pprof.columns import Int64Array, ProfileColumns, UInt64Array
from server.pprof.errors import MalformedProfileError

_A = TypeVar("_A", bound=np.ndarray[Any, Any])


@dataclass(frozen=True, slots=True)
class SampleView:
    """The sample types to keep, in this order, and which of them becomes the default one."""

    names: tuple[str, ...]
    default: str

    def __post_init__(self) -> None:
        if not self.names or self.default not in self.names:
            raise ValueError(f"the default sample type {self.default!r} must be one of {self.names}")


def sample_type_names(columns: ProfileColumns) -> list[str]:
    return [columns.strings[t] for t in columns.sample_type.reshape(-1, 2)[:, 0].tolist()]


def select_sample_types(columns: ProfileColumns, view: SampleView) -> ProfileColumns:
    """The profile with only ``view.names`` as its sample types (validated columns in, validated columns out)."""
    names = sample_type_names(columns)
    missing = [name for name in view.names if name not in names]
    if missing:
        raise MalformedProfileError(
            f"the profile has no sample type {missing[0]!r} (it has {', '.join(names) or 'none'})"
        )
    picked = [names.index(name) for name in view.names]
    n_samples = columns.sample_loc_offsets.shape[0] - 1
    values = columns.sample_values.reshape(n_samples, len(names))[:, picked]
    keep: np.ndarray[Any, Any] = np.asarray(values.any(axis=1))
    pairs = columns.sample_type.reshape(-1, 2)[picked]
    locs_offsets, locs = _kept_runs(columns.sample_loc_offsets, columns.sample_locs, keep)
    label_offsets, label_rows = _rows_mask(columns.sample_label_offsets, keep)
    return replace(
        columns,
        sample_type=_frozen(pairs.reshape(-1)),
        sample_values=_frozen(values[keep].reshape(-1)),
        sample_value_offsets=_frozen(np.arange(int(keep.sum()) + 1, dtype=np.int64) * len(picked)),
        sample_loc_offsets=locs_offsets,
        sample_locs=locs,
        sample_label_offsets=label_offsets,
        label_key=_frozen(columns.label_key[label_rows]),
        label_str=_frozen(columns.label_str[label_rows]),
        label_num=_frozen(columns.label_num[label_rows]),
        label_num_unit=_frozen(columns.label_num_unit[label_rows]),
        default_sample_type=int(columns.sample_type.reshape(-1, 2)[names.index(view.default), 0]),
    )


def _rows_mask(offsets: Int64Array, keep: np.ndarray[Any, Any]) -> tuple[Int64Array, np.ndarray[Any, Any]]:
    counts = np.diff(offsets)
    new_offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(counts[keep], out=new_offsets[1:])
    return _frozen(new_offsets), np.repeat(keep, counts)


def _kept_runs(offsets: Int64Array, flat: UInt64Array, keep: np.ndarray[Any, Any]) -> tuple[Int64Array, UInt64Array]:
    new_offsets, mask = _rows_mask(offsets, keep)
    return new_offsets, _frozen(flat[mask])


def _frozen(array: _A) -> _A:
    """Read-only, as decoded columns are (code that works on one must not be able to write into another)."""
    frozen = cast(_A, np.ascontiguousarray(array))
    frozen.setflags(write=False)
    return frozen
