"""Helpers for benchmarks: timing with medians, and varied copies of real captures."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from server.pprof import Profile, Sample, decode, encode

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def median_seconds(function: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def varied_scrapes(path: Path, count: int, seed: int = 1) -> list[bytes]:
    """``count`` plausible scrapes of one service made from one real capture.

    Real consecutive scrapes share most stacks but differ in values and in the
    set of rarely hit stacks; each copy rescales every sample's values by a
    random factor and drops about a tenth of the samples, then re-encodes, so
    the raw sizes stay realistic.
    """
    rng = random.Random(seed)
    original = decode(path.read_bytes())
    scrapes: list[bytes] = []
    for index in range(count):
        samples = []
        for sample in original.samples:
            if rng.random() < 0.1:
                continue
            factor = rng.choice((1, 1, 1, 2, 3))
            samples.append(
                Sample(sample.locations, tuple(v * factor for v in sample.values), sample.labels, sample.num_labels)
            )
        copy = Profile(
            sample_types=original.sample_types,
            samples=samples,
            period_type=original.period_type,
            period=original.period,
            time_nanos=original.time_nanos + index * 10_000_000_000,
            duration_nanos=original.duration_nanos,
            default_sample_type=original.default_sample_type,
        )
        scrapes.append(encode(copy))
    return scrapes
