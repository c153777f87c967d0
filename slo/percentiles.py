"""The one percentile method ``slo`` uses: nearest rank.

The p-th percentile of ``n`` samples is the sample at 1-based rank ``ceil(p / 100 * n)`` in
ascending order (``max`` is rank ``n``). It always returns a value that was measured — no
interpolation between two samples — and it is conservative for tails: with 20 samples the p95 is
the 19th, with 100 samples the 95th.

The same method is applied to raw samples (the plugin's report when it carries them,
pytest-benchmark's ``stats.data``) and to weighted histograms (Locust's ``response_times``
buckets), so every source that keeps enough data is judged the same way. Sources that only keep
pre-computed figures (Locust's ``*_stats.csv`` columns) are taken as their tool computed them;
``docs/slo.md`` states each tool's method and how far it can be from this one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

#: Percentile objectives and the fraction each one stands for (``max_ms`` is the 100th).
PERCENTILE_FIELDS: dict[str, float] = {
    "p50_ms": 50.0,
    "p90_ms": 90.0,
    "p95_ms": 95.0,
    "p99_ms": 99.0,
    "max_ms": 100.0,
}


def rank(percent: float, count: int) -> int:
    """The 1-based nearest rank of ``percent`` (0 < percent <= 100) among ``count`` samples."""
    if count <= 0:
        raise ValueError("no samples")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    # The small epsilon keeps 95 % of 100 at rank 95 despite float error (0.95 * 100 = 95.00000001).
    return max(1, min(count, math.ceil(percent / 100.0 * count - 1e-9)))


def percentile(samples: Iterable[float], percent: float) -> float:
    """Nearest-rank percentile of raw ``samples``."""
    ordered = sorted(samples)
    return float(ordered[rank(percent, len(ordered)) - 1])


def histogram_percentile(histogram: Mapping[float, int], percent: float) -> float:
    """Nearest-rank percentile of a ``{value: count}`` histogram (e.g. Locust's buckets)."""
    total = sum(histogram.values())
    target = rank(percent, total)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= target:
            return float(value)
    raise AssertionError("unreachable: rank is at most the total count")
