"""The certstore pytest plugin's ``--slo-report PATH`` JSON (``pytest_certstore.slo_report``).

The plugin writes one versioned document per run, merged across pytest-xdist workers, with one
record per ``@pytest.mark.slo`` test: ``test_id``, the marker's ``target``, ``measured``
figures, ``samples``, ``errors``, the plugin's ``verdict`` and the raw ``latencies_ms``. The gate
judges against the *spec's* targets (the spec is the release contract; markers are the test
authors' local checks) and ignores the plugin's pass/fail — except ``verdict = "error"`` (the
test failed before its SLO could be judged), which is NO DATA.

The selector (``test = "glob"``) matches ``test_id`` with :func:`fnmatch.fnmatchcase`. The raw
samples of every matched test are pooled and the percentiles recomputed with the project's one
method (:mod:`slo.percentiles`, linear interpolation, type 7 -- the same one the plugin uses for
its own figures), so a p95 here is judged the same way as Locust's and pytest-benchmark's and,
for a single matched test, equals the plugin's ``measured`` figure. If a record carries no raw
samples, its own ``measured`` figures are used and several such records
combine conservatively (worst figure, smallest sample count).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from slo.errors import ResultsError
from slo.percentiles import PERCENTILE_FIELDS, percentile
from slo.readers._base import Measurement, NoMatch, available, read_json
from slo.spec import Scenario

SOURCE = "pytest"
#: The report versions this reader understands.
SUPPORTED_FORMAT_VERSIONS = (1,)
METHOD_RAW = "linear interpolation (type 7) over the matched tests' pooled raw samples"
METHOD_SUMMARY = "the plugin's own figures (no raw samples); worst of the matched tests"


class PytestSloReport:
    """The records of one plugin SLO report."""

    source = SOURCE

    def __init__(self, records: list[dict[str, Any]], *, path: str) -> None:
        self.path = path
        self.records = records

    def measure(self, scenario: Scenario) -> Measurement | NoMatch:
        """Pool the records whose test id matches the scenario's glob."""
        pattern = scenario.test or ""
        chosen = [record for record in self.records if fnmatchcase(record["test_id"], pattern)]
        if not chosen:
            return NoMatch(
                f"no SLO test matches {pattern!r} in {self.path}; "
                + available([record["test_id"] for record in self.records])
            )
        broken = [record for record in chosen if record["verdict"] == "error"]
        if broken:
            return NoMatch(
                f"{broken[0]['test_id']} failed before its SLO could be judged"
                + (f": {broken[0]['why']}" if broken[0]["why"] else "")
            )
        matched = tuple(record["test_id"] for record in chosen)
        errors = sum(record["errors"] for record in chosen)
        total = sum(record["samples"] for record in chosen)
        if all(len(record["latencies_ms"]) == record["samples"] for record in chosen):
            pooled = [ms for record in chosen for ms in record["latencies_ms"]]
            latency = (
                {kind: percentile(pooled, pct) for kind, pct in PERCENTILE_FIELDS.items()}
                if pooled
                else {}
            )
            unavailable = {} if pooled else dict.fromkeys(PERCENTILE_FIELDS, "no samples")
            return Measurement(
                samples=total,
                failures=errors,
                latency=latency,
                matched=matched,
                unavailable=unavailable,
                method=METHOD_RAW,
            )
        latency = {}
        unavailable = {}
        for kind in PERCENTILE_FIELDS:
            values = [record["measured"].get(kind) for record in chosen]
            if all(value is not None for value in values):
                latency[kind] = max(values)
            else:
                unavailable[kind] = "not in the report for every matched test"
        return Measurement(
            samples=min(record["samples"] for record in chosen),
            failures=errors,
            latency=latency,
            matched=matched,
            unavailable=unavailable,
            method=METHOD_SUMMARY,
            rate=errors / total if total else None,
        )


def read_pytest_report(path: str | Path) -> PytestSloReport:
    """Read the plugin's ``--slo-report`` document."""
    shown = str(path)
    document = read_json(path, source=SOURCE)
    if not isinstance(document, dict):
        raise ResultsError(
            "expected a JSON object (the plugin's SLO report)", path=shown, source=SOURCE
        )
    version = document.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ResultsError(
            f"format_version {version!r} is not one this gate reads "
            f"({', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))})",
            path=shown,
            source=SOURCE,
        )
    raw = document.get("objectives")
    if not isinstance(raw, list):
        raise ResultsError("missing 'objectives' list", path=shown, source=SOURCE)
    return PytestSloReport([_check(item, i, shown) for i, item in enumerate(raw)], path=shown)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(item: Any, index: int, path: str) -> dict[str, Any]:
    where = f"objectives[{index}]"
    if not isinstance(item, dict):
        raise ResultsError(f"{where}: expected an object", path=path, source=SOURCE)
    test_id = item.get("test_id")
    if not isinstance(test_id, str) or not test_id:
        raise ResultsError(
            f"{where}: 'test_id' must be the test's node id", path=path, source=SOURCE
        )
    where = f"{where} ({test_id})"
    samples, errors = item.get("samples"), item.get("errors", 0)
    if not _count(samples) or not _count(errors) or errors > samples:
        raise ResultsError(
            f"{where}: 'samples' and 'errors' must be counts with errors <= samples, got "
            f"{samples!r} and {errors!r}",
            path=path,
            source=SOURCE,
        )
    measured = item.get("measured", {})
    if not isinstance(measured, dict) or not all(_number(v) for v in measured.values()):
        raise ResultsError(
            f"{where}: 'measured' must map figures to numbers", path=path, source=SOURCE
        )
    latencies = item.get("latencies_ms", [])
    if not isinstance(latencies, list) or not all(_number(v) and v >= 0 for v in latencies):
        raise ResultsError(
            f"{where}: 'latencies_ms' must be a list of ms >= 0", path=path, source=SOURCE
        )
    verdict = item.get("verdict")
    if not isinstance(verdict, str):
        raise ResultsError(f"{where}: missing 'verdict'", path=path, source=SOURCE)
    failures = item.get("failures") or []
    why = "; ".join(str(text) for text in failures) if isinstance(failures, list) else ""
    return {
        "test_id": test_id,
        "samples": samples,
        "errors": errors,
        "measured": {key: float(value) for key, value in measured.items()},
        "latencies_ms": [float(value) for value in latencies],
        "verdict": verdict,
        "why": why,
    }
