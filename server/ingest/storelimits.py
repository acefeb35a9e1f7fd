"""Limits that protect the store from one careless or hostile client.

A label holding a request id turns one series into millions, and a profile
of ten million samples costs more to store than the rest of the fleet: both
are cheap to send and expensive to keep. Each limit is a setting
(``STACKYARD_MAX_*``), each refusal names the limit and the setting to raise,
and each is counted in ``stackyard_limit_rejections_total{limit=...}`` so an
operator sees it before users do.

Label limits are checked before decoding (by :func:`server.syntax.labels.check_labels`,
with the grammar); profile limits while decoding, at
the first record past them (:func:`decode_limits`, enforced by
:mod:`server.pprof.limits`), so a hostile profile costs only what the limits
accept; the series limit is checked by the store when a series would be
created (:meth:`server.store.series.SeriesTable.get_or_create`). Goroutine
dumps go through the same label and series limits, and their own goroutine
and distinct-stack counts (``dump_goroutines``, ``dump_stacks``) are counted
while they are parsed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter

from server.errors import LimitExceeded
from server.pprof.errors import DecodeLimitError
from server.pprof.limits import DecodeLimits
from server.settings import Settings
from server.syntax.labels import LabelLimits

LIMITS = (
    "labels_per_series",
    "label_name_length",
    "label_value_length",
    "series_per_service",
    "profile_samples",
    "profile_locations",
    "profile_sample_types",
    "profile_decoded_bytes",
    "profile_record_bytes",
    "dump_goroutines",
    "dump_stacks",
    "dump_bytes",
)

#: The setting behind each decoding limit, named in refusals (fixed limits have none).
_DECODE_SETTINGS = {
    "profile_samples": "max_profile_samples",
    "profile_locations": "max_profile_locations",
    "profile_decoded_bytes": "max_decompressed_bytes",
}


def decode_limits(settings: Settings) -> DecodeLimits:
    """What one profile may cost while it is decoded: counts, and its decompressed size as its memory budget."""
    return DecodeLimits(
        samples=settings.max_profile_samples,
        locations=settings.max_profile_locations,
        memory=settings.max_decompressed_bytes,
    )


def decode_refusal(exc: DecodeLimitError) -> LimitExceeded:
    """The store-limit refusal (413, counted) for a profile that passed a decoding limit, naming its setting."""
    setting = _DECODE_SETTINGS.get(exc.name)
    where = f" ({setting})" if setting else ""
    return LimitExceeded(exc.name, f"body: {exc.detail}, the limit{where}", 413)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    labels_per_series: int
    label_name_length: int
    label_value_length: int
    series_per_service: int

    @classmethod
    def of(cls, settings: Settings) -> StoreLimits:
        return cls(
            labels_per_series=settings.max_labels_per_series,
            label_name_length=settings.max_label_name_length,
            label_value_length=settings.max_label_value_length,
            series_per_service=settings.max_series_per_service,
        )

    @property
    def labels(self) -> LabelLimits:
        """The label limits, for :func:`server.syntax.labels.check_labels` (the one label checker)."""
        return LabelLimits(self.labels_per_series, self.label_name_length, self.label_value_length)


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
