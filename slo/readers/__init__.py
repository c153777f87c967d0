"""Readers: one module per results format, each turning a tool's output into measurements.

:func:`read_locust` picks the Locust reader from what is on disk: a ``.json`` file or a
``_stats.csv`` file by name, or a ``--csv`` prefix / results folder, preferring the JSON (full
histogram, written after the stop) over the CSV.
"""

from __future__ import annotations

from pathlib import Path

from slo.errors import ResultsError
from slo.readers._base import Measurement, NoMatch, SourceResults
from slo.readers.benchmark import BenchmarkResults, read_benchmark_json
from slo.readers.coverage import CoverageFigure, CoverageResults, read_coverage_json
from slo.readers.locust_csv import LocustCsvStats, read_locust_csv
from slo.readers.locust_json import LocustStats, read_locust_json
from slo.readers.pytest_report import PytestSloReport, read_pytest_report

__all__ = [
    "BenchmarkResults",
    "CoverageFigure",
    "CoverageResults",
    "LocustCsvStats",
    "LocustStats",
    "Measurement",
    "NoMatch",
    "PytestSloReport",
    "SourceResults",
    "read_benchmark_json",
    "read_coverage_json",
    "read_locust",
    "read_locust_csv",
    "read_locust_json",
    "read_pytest_report",
]


def read_locust(path: str | Path) -> LocustStats | LocustCsvStats:
    """Read Locust results from a file, a ``--csv`` prefix or a folder holding one run.

    - ``X.json``: Locust's ``--json`` output or ``--json-file X``;
    - ``X_stats.csv``: ``--csv X``;
    - a prefix ``X``: ``X.json`` if it exists, else ``X_stats.csv``;
    - a folder: the one ``*_stats.csv`` in it (with its prefix's ``.json`` preferred), or the one
      ``*.json`` if there is no CSV.
    """
    target = Path(path)
    shown = str(path)
    if target.is_file():
        if target.name.endswith("_stats.csv"):
            return read_locust_csv(target)
        if target.suffix == ".json":
            return read_locust_json(target)
        raise ResultsError(
            "not a Locust results file: expected NAME.json (--json/--json-file) or "
            "PREFIX_stats.csv (--csv)",
            path=shown,
            source="locust",
        )
    if target.is_dir():
        stats = sorted(target.glob("*_stats.csv"))
        if len(stats) > 1:
            raise ResultsError(
                f"holds {len(stats)} Locust runs ({', '.join(p.name for p in stats)}); "
                "pass the prefix of the one to judge",
                path=shown,
                source="locust",
            )
        if stats:
            prefix = stats[0].with_name(stats[0].name[: -len("_stats.csv")])
            return read_locust(prefix)
        documents = sorted(target.glob("*.json"))
        if len(documents) == 1:
            return read_locust_json(documents[0])
        raise ResultsError(
            "holds no Locust results (no *_stats.csv and not exactly one *.json)",
            path=shown,
            source="locust",
        )
    as_json = target.with_name(target.name + ".json")
    if as_json.is_file():
        return read_locust_json(as_json)
    as_csv = target.with_name(target.name + "_stats.csv")
    if as_csv.is_file():
        return read_locust_csv(as_csv)
    raise ResultsError(
        f"no Locust results: none of {shown}, {as_json.name} or {as_csv.name} exists "
        "(a missing results file is an error, not a pass)",
        path=shown,
        source="locust",
    )
