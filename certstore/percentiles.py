"""The one percentile method of the project: linear interpolation (Hyndman & Fan type 7).

Every latency figure certstore reports -- the rehearsal report, the pytest plugin's SLO
verdicts, the release gate (``slo``) -- comes from this module, so a p95 means the same thing
wherever it is printed and two tools never disagree only because they count differently.

Type 7 is NumPy's default (``numpy.percentile(..., method="linear")``) and Python's
``statistics.quantiles(..., method="inclusive")``: for ``n`` samples sorted ascending
``x[0..n-1]`` and a percentile ``q`` in 0..100, ``h = (n - 1) * q / 100`` and the result is
``x[floor(h)] + (h - floor(h)) * (x[ceil(h)] - x[floor(h)])``. ``q = 0`` is the minimum and
``q = 100`` the maximum. It was chosen because it is what anyone re-checking a figure with NumPy
gets by default. Unlike picking one sample by rank it may return a value between two measured
samples, and with few samples a tail percentile is close to the maximum (with 20 samples the
p95 lies between the 19th and 20th), so reports print the sample count next to it.

This module is product code: the test harness (``pytest_certstore``, ``slo``) imports it, never
the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["PERCENTILE_METHOD", "histogram_percentile", "percentile"]

PERCENTILE_METHOD = (
    "linear interpolation between closest ranks (Hyndman-Fan type 7, NumPy's default): "
    "rank h = (n - 1) * q / 100, x[floor(h)] + (h - floor(h)) * (x[ceil(h)] - x[floor(h)])"
)


def _position(count: int, q: float) -> float:
    """The 0-based fractional rank ``h`` of percentile ``q`` among ``count`` samples."""
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 100:
        raise ValueError(f"percentile {q!r} is outside 0..100")
    if count <= 0:
        raise ValueError("percentile of no values")
    return (count - 1) * q / 100


def _interpolate(low_value: float, high_value: float, h: float) -> float:
    """Type 7's step between the values at ranks ``floor(h)`` and ``ceil(h)``."""
    fraction = h - math.floor(h)
    if fraction == 0 or low_value == high_value:
        # Exact ranks return the measured sample itself, with no float rounding.
        return float(low_value)
    return float(low_value + fraction * (high_value - low_value))


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation (type 7).

    ``values`` is copied and sorted; the caller's sequence is left as it was. Raises
    ValueError when there are no values or ``q`` is outside 0..100, since a percentile of
    nothing has no honest value and a wrong ``q`` is a caller's mistake, not a figure.
    """
    ordered = sorted(values)
    h = _position(len(ordered), q)
    return _interpolate(ordered[math.floor(h)], ordered[math.ceil(h)], h)


def histogram_percentile(histogram: Mapping[float, int], q: float) -> float:
    """The type-7 percentile of the multiset ``{value: count}`` describes, without expanding it.

    Equal to ``percentile([v for v, c in histogram.items() for _ in range(c)], q)``, but walks
    cumulative counts over the sorted values instead of building the list: Locust's histograms
    hold millions of requests in a few hundred buckets. Zero counts are allowed (an empty
    bucket); negative counts, or no counted value at all, raise ValueError.
    """
    counts = sorted(histogram.items())
    for value, count in counts:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"histogram count for {value!r} must be a whole number >= 0")
    total = sum(count for _, count in counts)
    h = _position(total, q)
    low_rank, high_rank = math.floor(h), math.ceil(h)
    low_value: float | None = None
    seen = 0
    for value, count in counts:
        seen += count  # ranks seen - count .. seen - 1 (0-based) hold ``value``
        if low_value is None and seen > low_rank:
            low_value = value
        if seen > high_rank:
            return _interpolate(low_value if low_value is not None else value, value, h)
    raise AssertionError("unreachable: ceil(h) <= total - 1")
