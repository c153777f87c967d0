"""Latency summaries with one stated percentile method.

Percentiles come from :mod:`certstore.percentiles`, the project's one method: linear
interpolation between the two closest ranks (Hyndman & Fan type 7, the default of NumPy and of
Python's ``statistics.quantiles(method="inclusive")``): for ``n`` sorted samples the q-th
percentile sits at rank ``(n - 1) * q / 100``. With fewer than 20 samples a p95 is little more
than the maximum; the report prints the sample count next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certstore import percentiles as _percentiles
from certstore.percentiles import PERCENTILE_METHOD

__all__ = ["PERCENTILE_METHOD", "LatencySummary", "percentile"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``; None when there are none.

    A summary of an operation that never ran is "no figure", not an error, so the empty case
    is None here; everything else is :func:`certstore.percentiles.percentile`.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    if not values:
        return None
    return _percentiles.percentile(values, q)


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds: count, p50/p95/p99, mean and max of one operation's samples."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        """Summarise samples given in seconds."""
        if not seconds:
            return cls(0, None, None, None, None, None)
        ms = [s * 1000.0 for s in seconds]
        return cls(
            len(ms),
            percentile(ms, 50),
            percentile(ms, 95),
            percentile(ms, 99),
            sum(ms) / len(ms),
            max(ms),
        )

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready view (milliseconds, rounded to microseconds)."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "count": self.count,
            "p50_ms": r(self.p50_ms),
            "p95_ms": r(self.p95_ms),
            "p99_ms": r(self.p99_ms),
            "mean_ms": r(self.mean_ms),
            "max_ms": r(self.max_ms),
        }
