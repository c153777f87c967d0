"""coverage.py's ``coverage json`` report.

``coverage.total`` is compared with ``totals.percent_covered`` and each ``coverage.files``
entry with that file's ``summary.percent_covered`` — the figure ``coverage report`` prints,
which counts branches too when the run measured branches (``branch = true``). A spec path matches
a report path that is equal to it or ends with ``/`` + it, after normalising separators; a path
that matches no file, or several, is NO DATA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slo.errors import ResultsError
from slo.readers._base import NoMatch, available, read_json

SOURCE = "coverage"


@dataclass(frozen=True)
class CoverageFigure:
    """One measured coverage percentage and the report path it came from."""

    percent: float
    matched: str
    statements: int


class CoverageResults:
    """Totals and per-file summaries of one coverage JSON report."""

    source = SOURCE

    def __init__(self, total: CoverageFigure, files: dict[str, CoverageFigure], *, path: str):
        self.path = path
        self.total = total
        self.files = files

    def file(self, spec_path: str) -> CoverageFigure | NoMatch:
        """The figure for the file ``spec_path`` names."""
        wanted = spec_path.replace("\\", "/")
        while wanted.startswith("./"):
            wanted = wanted[2:]
        hits = [name for name in self.files if name == wanted or name.endswith("/" + wanted)]
        if not hits:
            return NoMatch(
                f"{spec_path!r} is not in the coverage report {self.path} (not measured, or "
                f"outside [tool.coverage.run] source); " + available(list(self.files))
            )
        if len(hits) > 1:
            return NoMatch(
                f"{spec_path!r} matches {len(hits)} files in {self.path} "
                f"({', '.join(sorted(hits))}); give a longer path"
            )
        return self.files[hits[0]]


def read_coverage_json(path: str | Path) -> CoverageResults:
    """Read a ``coverage json`` report."""
    shown = str(path)
    document = read_json(path, source=SOURCE)
    if not isinstance(document, dict) or not isinstance(document.get("totals"), dict):
        raise ResultsError(
            "not a coverage JSON report: no 'totals' object", path=shown, source=SOURCE
        )
    files_raw = document.get("files")
    if not isinstance(files_raw, dict):
        raise ResultsError(
            "not a coverage JSON report: no 'files' object", path=shown, source=SOURCE
        )
    total = _figure(document["totals"], "totals", "(total)", shown)
    files: dict[str, CoverageFigure] = {}
    for name, body in files_raw.items():
        if not isinstance(body, dict) or not isinstance(body.get("summary"), dict):
            raise ResultsError(
                f"files[{name!r}]: missing 'summary' object", path=shown, source=SOURCE
            )
        normalised = name.replace("\\", "/")
        files[normalised] = _figure(body["summary"], f"files[{name!r}].summary", normalised, shown)
    return CoverageResults(total, files, path=shown)


def _figure(summary: dict[str, Any], where: str, matched: str, path: str) -> CoverageFigure:
    percent = summary.get("percent_covered")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ResultsError(
            f"{where}.percent_covered must be a percentage, got {percent!r}",
            path=path,
            source=SOURCE,
        )
    statements = summary.get("num_statements", 0)
    if isinstance(statements, bool) or not isinstance(statements, int):
        raise ResultsError(
            f"{where}.num_statements must be a count, got {statements!r}", path=path, source=SOURCE
        )
    return CoverageFigure(percent=float(percent), matched=matched, statements=statements)
