"""Limits that protect the store from one careless or hostile client.

A label holding a request id turns one series into millions, and a profile
of ten million samples costs more to store than the rest of the fleet: both
are cheap to send and expensive to keep. Each limit is a setting
(``STACKYARD_MAX_*``), each refusal names the limit and the setting to raise,
and each is counted in ``stackyard_limit_rejections_total{limit=...}`` so an
operator sees it before users do.

Label and profile limits are checked after decoding and before anything is
written; the series limit is checked by the store when a series would be
created (:meth:`server.store.series.SeriesTable.get_or_create`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter

from server.errors import LimitExceeded
from server.pprof.columns import ProfileColumns
from server.settings import Settings

LIMITS = (
    "labels_per_series",
    "label_name_length",
    "label_value_length",
    "series_per_service",
    "profile_samples",
    "profile_locations",
)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    labels_per_series: int
    label_name_length: int
    label_value_length: int
    series_per_service: int
    profile_samples: int
    profile_locations: int

    @classmethod
    def of(cls, settings: Settings) -> StoreLimits:
        return cls(
            labels_per_series=settings.max_labels_per_series,
            label_name_length=settings.max_label_name_length,
            label_value_length=settings.max_label_value_length,
            series_per_service=settings.max_series_per_service,
            profile_samples=settings.max_profile_samples,
            profile_locations=settings.max_profile_locations,
        )

    def check_labels(self, labels: dict[str, str]) -> None:
        if len(labels) > self.labels_per_series:
            raise LimitExceeded(
                "labels_per_series",
                f"label: {len(labels)} labels exceed the limit of {self.labels_per_series} per series "
                "(max_labels_per_series)",
            )
        for name, value in labels.items():
            if len(name) > self.label_name_length:
                raise LimitExceeded(
                    "label_name_length",
                    f"label: the name {name[:64]!r}... is {len(name)} characters, over the limit of "
                    f"{self.label_name_length} (max_label_name_length)",
                )
            if len(value) > self.label_value_length:
                raise LimitExceeded(
                    "label_value_length",
                    f"label: the value of {name!r} is {len(value)} characters, over the limit of "
                    f"{self.label_value_length} (max_label_value_length)",
                )

    def check_profile(self, columns: ProfileColumns) -> None:
        samples = int(columns.sample_loc_offsets.shape[0]) - 1
        if samples > self.profile_samples:
            raise LimitExceeded(
                "profile_samples",
                f"body: the profile has {samples} samples, over the limit of {self.profile_samples} "
                "(max_profile_samples)",
                413,
            )
        locations = int(columns.location_id.shape[0])
        if locations > self.profile_locations:
            raise LimitExceeded(
                "profile_locations",
                f"body: the profile has {locations} locations, over the limit of {self.profile_locations} "
                "(max_profile_locations)",
                413,
            )


_counters: WeakKeyDictionary[CollectorRegistry, Counter] = WeakKeyDictionary()
_lock = threading.Lock()


def limit_rejections(registry: CollectorRegistry) -> Counter:
    """The registry's ``stackyard_limit_rejections_total``, created once with every limit at zero."""
    with _lock:
        counter = _counters.get(registry)
        if counter is None:
            counter = Counter(
                "stackyard_limit_rejections_total",
                "Profiles refused because they would pass a store limit, by limit.",
                ["limit"],
                registry=registry,
            )
            for name in LIMITS:
                counter.labels(name)
            _counters[registry] = counter
        return counter
