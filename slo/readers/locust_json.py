"""Locust's JSON statistics: ``--json`` (stdout) or ``--json-file NAME`` (``NAME.json``).

This is the preferred Locust source: each entry keeps Locust's full response-time histogram
(``response_times``: bucket in ms -> count), so p50/p95/p99 are computed here with the
project's one method of :mod:`slo.percentiles` (linear interpolation, type 7, over the
histogram's cumulative counts), entries can be pooled (``name = "Aggregated"`` without a
``request_type`` pools every entry), and it is written once, after the run stopped.
The in-run verdict (``loadtests/slo_verdict.py``) feeds Locust's in-memory entries, serialized
to this very format, through the same class.

Locust rounds every response time into its bucket before counting it (``bucket_response_time``
in locust/stats.py, Locust 2.47): to 1 ms below 100 ms, to 10 ms from 100 ms, to 100 ms from
1 s, to 1 s from 10 s. Rounding keeps the order, so the bucket at each rank is the rounded
sample at that rank, and a percentile interpolated between two buckets is within half a bucket
(the larger of the two) of the same percentile of the unrounded times: ±0.5 ms below
100 ms, ±5 ms up to 1 s (at most 5 % at 100 ms, 1 % at 500 ms), ±50 ms up to 10 s.
``max_ms`` is exact (Locust keeps the unrounded maximum), so a bucketed p99 can read up to half
a bucket above it (p99 210 ms, max 208.7 ms).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from slo.errors import ResultsError
from slo.percentiles import PERCENTILE_FIELDS, histogram_percentile
from slo.readers._base import Measurement, NoMatch, available, read_json
from slo.spec import Scenario

SOURCE = "locust"
METHOD = (
    "linear interpolation (type 7) over Locust's response-time buckets (1 ms below 100 ms, "
    "10 ms below 1 s, 100 ms below 10 s); max exact"
)
AGGREGATED = "Aggregated"


class LocustStats:
    """Locust statistics entries (the ``serialize()`` form of ``StatsEntry``)."""

    source = SOURCE

    def __init__(self, entries: list[dict[str, Any]], *, path: str) -> None:
        self.path = path
        self.entries = [_check_entry(entry, index, path) for index, entry in enumerate(entries)]

    def names(self) -> list[str]:
        """``"METHOD name"`` of every entry."""
        return [f"{entry['method'] or ''} {entry['name']}".strip() for entry in self.entries]

    def measure(self, scenario: Scenario) -> Measurement | NoMatch:
        """Pool the entries the scenario selects and compute its figures."""
        name, request_type = scenario.request_name, scenario.request_type
        if name == AGGREGATED and request_type is None:
            chosen = list(self.entries)
        else:
            chosen = [
                entry
                for entry in self.entries
                if entry["name"] == name
                and (request_type is None or entry["method"] == request_type)
            ]
        if not chosen:
            return NoMatch(
                f"no Locust entry {scenario.selector()[len('locust ') :]} in {self.path}; "
                + available(self.names())
            )
        histogram: Counter[float] = Counter()
        for entry in chosen:
            for bucket, count in entry["response_times"].items():
                histogram[bucket] += count
        samples = sum(entry["num_requests"] for entry in chosen)
        failures = sum(entry["num_failures"] for entry in chosen)
        latency: dict[str, float] = {}
        unavailable: dict[str, str] = {}
        if sum(histogram.values()) > 0:
            for kind, percent in PERCENTILE_FIELDS.items():
                if kind != "max_ms":
                    latency[kind] = histogram_percentile(histogram, percent)
            latency["max_ms"] = max(float(entry["max_response_time"] or 0.0) for entry in chosen)
        else:
            for kind in PERCENTILE_FIELDS:
                unavailable[kind] = "no timed requests (every request had no response time)"
        matched = tuple(f"{e['method'] or ''} {e['name']}".strip() for e in chosen)
        return Measurement(
            samples=samples,
            failures=failures,
            latency=latency,
            matched=matched,
            unavailable=unavailable,
            method=METHOD,
        )


def read_locust_json(path: str | Path) -> LocustStats:
    """Read a Locust ``--json`` / ``--json-file`` document."""
    document = read_json(path, source=SOURCE)
    if not isinstance(document, list):
        raise ResultsError(
            f"expected a JSON list of Locust stats entries, got {type(document).__name__}",
            path=str(path),
            source=SOURCE,
        )
    return LocustStats(document, path=str(path))


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "num_requests": int,
    "num_failures": int,
    "response_times": dict,
}


def _check_entry(entry: Any, index: int, path: str) -> dict[str, Any]:
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise ResultsError(
            f"{where}: expected an object, got {type(entry).__name__}", path=path, source=SOURCE
        )
    for name, kind in _REQUIRED.items():
        if name not in entry:
            raise ResultsError(f"{where}: missing field {name!r}", path=path, source=SOURCE)
        value = entry[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ResultsError(
                f"{where}: field {name!r} must be {getattr(kind, '__name__', kind)}, got {value!r}",
                path=path,
                source=SOURCE,
            )
    method = entry.get("method")
    if method is not None and not isinstance(method, str):
        raise ResultsError(
            f"{where}: field 'method' must be a string, got {method!r}", path=path, source=SOURCE
        )
    maximum = entry.get("max_response_time")
    if maximum is not None and (
        isinstance(maximum, bool)
        or not isinstance(maximum, int | float)
        or not math.isfinite(maximum)
        or maximum < 0
    ):
        raise ResultsError(
            f"{where}: field 'max_response_time' must be a number of ms >= 0, got {maximum!r}",
            path=path,
            source=SOURCE,
        )
    buckets: dict[float, int] = {}
    for key, count in entry["response_times"].items():
        try:
            bucket = float(key)
        except (TypeError, ValueError):
            bucket = -1.0
        if not math.isfinite(bucket) or bucket < 0:
            raise ResultsError(
                f"{where}: response_times key {key!r} is not a number of ms >= 0",
                path=path,
                source=SOURCE,
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ResultsError(
                f"{where}: response_times[{key!r}] must be a count >= 0, got {count!r}",
                path=path,
                source=SOURCE,
            )
        buckets[bucket] = buckets.get(bucket, 0) + count
    if entry["num_failures"] < 0 or entry["num_requests"] < 0:
        raise ResultsError(f"{where}: negative request counts", path=path, source=SOURCE)
    if entry["num_failures"] > entry["num_requests"]:
        raise ResultsError(
            f"{where}: num_failures {entry['num_failures']} exceeds num_requests "
            f"{entry['num_requests']}",
            path=path,
            source=SOURCE,
        )
    if maximum is None:
        # Absent (or null) in a file with timings: the slowest recorded bucket, never 0 ms
        # (which would pass any max_ms objective without a look at the requests).
        maximum = max((ms for ms, count in buckets.items() if count), default=0.0)
    return {
        "name": entry["name"],
        "method": method,
        "num_requests": entry["num_requests"],
        "num_failures": entry["num_failures"],
        "response_times": buckets,
        "max_response_time": maximum,
    }
