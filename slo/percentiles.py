"""The one percentile method ``slo`` uses: the project's, linear interpolation (type 7).

The math lives in :mod:`certstore.percentiles` (Hyndman & Fan type 7, NumPy's default): for
``n`` samples sorted ascending and percentile ``p``, ``h = (n - 1) * p / 100`` and the result
interpolates between the samples at 0-based ranks ``floor(h)`` and ``ceil(h)`` (``max`` is
``p = 100``). The gate, the pytest plugin's marker verdicts and the rehearsal report all use it,
so a p95 the gate judges is the p95 the plugin printed and the one NumPy gives.

The same method is applied to raw samples (the plugin's report when it carries them,
pytest-benchmark's ``stats.data``) and to weighted histograms (Locust's ``response_times``
buckets), so every source that keeps enough data is judged the same way. Sources that only keep
pre-computed figures (Locust's ``*_stats.csv`` columns) are taken as their tool computed them;
``docs/slo.md`` states each tool's method and how far it can be from this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from certstore import percentiles as _percentiles
from certstore.percentiles import PERCENTILE_METHOD

__all__ = ["PERCENTILE_FIELDS", "PERCENTILE_METHOD", "histogram_percentile", "percentile"]

#: Percentile objectives and the percentile each one stands for (``max_ms`` is the 100th).
PERCENTILE_FIELDS: dict[str, float] = {
    "p50_ms": 50.0,
    "p90_ms": 90.0,
    "p95_ms": 95.0,
    "p99_ms": 99.0,
    "max_ms": 100.0,
}


def percentile(samples: Iterable[float], percent: float) -> float:
    """Type-7 percentile (0..100) of raw ``samples``; ValueError when there are none."""
    return _percentiles.percentile(samples, percent)


def histogram_percentile(histogram: Mapping[float, int], percent: float) -> float:
    """Type-7 percentile of a ``{value: count}`` histogram (e.g. Locust's buckets).

    The same figure :func:`percentile` gives for the expanded list, computed from cumulative
    counts, because a Locust histogram may stand for millions of requests.
    """
    return _percentiles.histogram_percentile(histogram, percent)
