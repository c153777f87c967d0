"""Locust's ``--csv PREFIX`` statistics table, ``PREFIX_stats.csv``.

Used when no JSON was kept. The CSV holds only Locust's own pre-computed figures, so:

- percentiles are Locust's (``calculate_response_time_percentile``): over the same rounded
  buckets as the JSON (see :mod:`slo.readers.locust_json` for the error bound), the bucketed
  sample at 0-based index ``int(n * p)``, with no interpolation. For p50/p90/p95/p99 that index
  is ``ceil(h)`` with ``h = (n - 1) * p``, the upper of the two samples the gate's type-7 method
  interpolates between: never below the type-7 figure over the same buckets, and above it by
  at most the gap between those two samples;
- rows cannot be pooled: a selector without ``request_type`` that matches several rows is
  NO DATA (give the type, or use ``name = "Aggregated"`` for Locust's own total row);
- Locust 2.47 rewrites the file once a second while the run goes on and does not rewrite it at
  shutdown, so the last second of requests may be missing; the JSON is written after the stop.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from slo.errors import ResultsError
from slo.readers._base import Measurement, NoMatch, available
from slo.spec import Scenario

SOURCE = "locust"
METHOD = "Locust's own percentile columns (bucketed; index int(n*p)); max exact"
_COLUMNS = {
    "type": "Type",
    "name": "Name",
    "samples": "Request Count",
    "failures": "Failure Count",
    "p50_ms": "50%",
    "p90_ms": "90%",
    "p95_ms": "95%",
    "p99_ms": "99%",
    "max_ms": "Max Response Time",
}


_FIGURES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


class LocustCsvStats:
    """Rows of a Locust ``_stats.csv``."""

    source = SOURCE

    def __init__(self, rows: list[dict[str, object]], *, path: str) -> None:
        self.path = path
        self.rows = rows

    def names(self) -> list[str]:
        """``"Type Name"`` of every row."""
        return [f"{row['type']} {row['name']}".strip() for row in self.rows]

    def measure(self, scenario: Scenario) -> Measurement | NoMatch:
        """The figures of the one row the scenario selects."""
        name, request_type = scenario.request_name, scenario.request_type
        chosen = [
            row
            for row in self.rows
            if row["name"] == name and (request_type is None or row["type"] == request_type)
        ]
        if not chosen:
            return NoMatch(
                f"no Locust row {scenario.selector()[len('locust ') :]} in {self.path}; "
                + available(self.names())
            )
        if len(chosen) > 1:
            types = ", ".join(sorted(str(row["type"]) for row in chosen))
            return NoMatch(
                f"{len(chosen)} rows named {name!r} ({types}) in {self.path}: percentiles from CSV "
                "rows cannot be pooled; give request_type, or read Locust's JSON"
            )
        row = chosen[0]
        latency = {kind: row[kind] for kind in _FIGURES if row[kind] is not None}
        unavailable = {
            kind: "N/A in the CSV (no timed requests)" for kind in _FIGURES if row[kind] is None
        }
        return Measurement(
            samples=int(row["samples"]),  # type: ignore[call-overload]
            failures=int(row["failures"]),  # type: ignore[call-overload]
            latency=latency,  # type: ignore[arg-type]
            matched=(f"{row['type']} {row['name']}".strip(),),
            unavailable=unavailable,
            method=METHOD,
        )


def read_locust_csv(path: str | Path) -> LocustCsvStats:
    """Read a Locust ``PREFIX_stats.csv``."""
    shown = str(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if not header:
                raise ResultsError("is empty (no header row)", path=shown, source=SOURCE)
            missing = [column for column in _COLUMNS.values() if column not in header]
            if missing:
                raise ResultsError(
                    f"not a Locust stats CSV: missing column(s) {', '.join(map(repr, missing))}",
                    path=shown,
                    source=SOURCE,
                )
            rows = [
                _parse_row(raw, line, shown, len(header))
                for line, raw in enumerate(reader, start=2)
            ]
    except FileNotFoundError:
        raise ResultsError(
            "no such file (a missing results file is an error, not a pass)",
            path=shown,
            source=SOURCE,
        ) from None
    except UnicodeDecodeError as err:
        raise ResultsError(f"not UTF-8 text ({err.reason})", path=shown, source=SOURCE) from err
    except csv.Error as err:
        raise ResultsError(f"not valid CSV: {err}", path=shown, source=SOURCE) from err
    except OSError as err:
        raise ResultsError(
            f"cannot read: {err.strerror or err}", path=shown, source=SOURCE
        ) from err
    return LocustCsvStats(rows, path=shown)


def _parse_row(
    raw: dict[str | None, str | None], line: int, path: str, columns: int
) -> dict[str, object]:
    # csv.DictReader pads a short row with None (and files extras under the key None): a row
    # cut off mid-write (Locust rewrites the file every second) must not read as "N/A"
    given = sum(1 for key, value in raw.items() if key is not None and value is not None)
    extra = len(raw.get(None) or ())  # type: ignore[arg-type]
    if given != columns or extra:
        raise ResultsError(
            f"line {line}: has {given + extra} columns, the header has {columns} (a file cut "
            "off while Locust was writing it?)",
            path=path,
            source=SOURCE,
        )
    row: dict[str, object] = {
        "type": raw[_COLUMNS["type"]] or "",
        "name": raw[_COLUMNS["name"]] or "",
    }
    for key in ("samples", "failures"):
        text = (raw[_COLUMNS[key]] or "").strip()
        try:
            value = int(text)
        except ValueError:
            raise ResultsError(
                f"line {line}: column {_COLUMNS[key]!r} is not a whole number: {text!r}",
                path=path,
                source=SOURCE,
            ) from None
        if value < 0:
            raise ResultsError(
                f"line {line}: column {_COLUMNS[key]!r} is negative", path=path, source=SOURCE
            )
        row[key] = value
    for key in _FIGURES:
        text = (raw[_COLUMNS[key]] or "").strip()
        if text in ("N/A", ""):
            row[key] = None
            continue
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not math.isfinite(value) or value < 0:
            raise ResultsError(
                f"line {line}: column {_COLUMNS[key]!r} is not a number of ms >= 0: {text!r}",
                path=path,
                source=SOURCE,
            )
        row[key] = value
    # Percentiles of one row never decrease (not checked against the exact maximum: Locust
    # rounds the bucketed percentiles, so 99% may read above it)
    figures = [row[key] for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")]
    known = [value for value in figures if value is not None]
    if known != sorted(known):  # type: ignore[type-var]
        raise ResultsError(
            f"line {line}: the percentiles are not in increasing order "
            f"(50%, 90%, 95%, 99%: {', '.join(str(v) for v in figures)})",
            path=path,
            source=SOURCE,
        )
    return row
