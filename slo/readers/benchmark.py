"""pytest-benchmark's JSON: ``--benchmark-json PATH`` or a ``--benchmark-save`` file.

The selector (``benchmark = "glob"``) matches a benchmark's ``fullname``
(``tests/x.py::test_y``) or its ``name`` (``test_y``), with :func:`fnmatch.fnmatchcase`.

Percentiles need the raw timings (``stats.data``). pytest-benchmark 5 always writes them into
``--benchmark-json``; files saved with ``--benchmark-save``/``--benchmark-autosave`` carry them
only with ``--benchmark-save-data``. With them, p50/p90/p95/p99/max are the project's one
percentile method (:mod:`slo.percentiles`, linear interpolation, type 7) over every round
(``stats.data`` holds one time per round, already divided by the round's iterations), and
several matched benchmarks are pooled. Without them only ``p50_ms`` (pytest-benchmark's
``median``) and ``max_ms`` (``max``) are available; a p90/p95/p99 objective then has NO DATA,
with the reason. pytest-benchmark counts no failures, so it gives no error rate.
Samples = rounds.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from slo.errors import ResultsError
from slo.percentiles import PERCENTILE_FIELDS, percentile
from slo.readers._base import Measurement, NoMatch, available, read_json
from slo.spec import Scenario

SOURCE = "benchmark"
METHOD_RAW = "linear interpolation (type 7) over every round's time (stats.data)"
METHOD_SUMMARY = "pytest-benchmark's median and max (no raw timings saved)"


class BenchmarkResults:
    """The benchmarks of one pytest-benchmark JSON document."""

    source = SOURCE

    def __init__(self, benchmarks: list[dict[str, Any]], *, path: str) -> None:
        self.path = path
        self.benchmarks = benchmarks

    def measure(self, scenario: Scenario) -> Measurement | NoMatch:
        """Pool the benchmarks whose name or fullname matches the scenario's glob."""
        pattern = scenario.benchmark or ""
        chosen = [
            bench
            for bench in self.benchmarks
            if fnmatchcase(bench["fullname"], pattern) or fnmatchcase(bench["name"], pattern)
        ]
        if not chosen:
            return NoMatch(
                f"no benchmark matches {pattern!r} in {self.path}; "
                + available([bench["fullname"] for bench in self.benchmarks])
            )
        matched = tuple(bench["fullname"] for bench in chosen)
        samples = sum(bench["rounds"] for bench in chosen)
        if all(bench["data"] for bench in chosen):
            data_ms = [seconds * 1000.0 for bench in chosen for seconds in bench["data"]]
            latency = {kind: percentile(data_ms, pct) for kind, pct in PERCENTILE_FIELDS.items()}
            return Measurement(
                samples=len(data_ms),
                failures=None,
                latency=latency,
                matched=matched,
                method=METHOD_RAW,
            )
        reason = "needs raw timings: use --benchmark-json, or --benchmark-save-data when saving"
        unavailable = {"p90_ms": reason, "p95_ms": reason, "p99_ms": reason}
        latency = {"max_ms": max(bench["max"] for bench in chosen) * 1000.0}
        if len(chosen) == 1:
            latency["p50_ms"] = chosen[0]["median"] * 1000.0
        else:
            unavailable["p50_ms"] = (
                f"{len(chosen)} benchmarks matched and medians cannot be pooled; " + reason
            )
        return Measurement(
            samples=samples,
            failures=None,
            latency=latency,
            matched=matched,
            unavailable=unavailable,
            method=METHOD_SUMMARY,
        )


def read_benchmark_json(path: str | Path) -> BenchmarkResults:
    """Read a pytest-benchmark JSON document."""
    shown = str(path)
    document = read_json(path, source=SOURCE)
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise ResultsError(
            "not a pytest-benchmark document: expected an object with a 'benchmarks' list",
            path=shown,
            source=SOURCE,
        )
    benchmarks = [_check(bench, index, shown) for index, bench in enumerate(document["benchmarks"])]
    return BenchmarkResults(benchmarks, path=shown)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(bench: Any, index: int, path: str) -> dict[str, Any]:
    where = f"benchmarks[{index}]"
    if not isinstance(bench, dict):
        raise ResultsError(f"{where}: expected an object", path=path, source=SOURCE)
    name, fullname, stats = bench.get("name"), bench.get("fullname"), bench.get("stats")
    if not isinstance(name, str) or not isinstance(fullname, str):
        raise ResultsError(f"{where}: missing 'name' or 'fullname'", path=path, source=SOURCE)
    if not isinstance(stats, dict):
        raise ResultsError(
            f"{where} ({fullname}): missing 'stats' object", path=path, source=SOURCE
        )
    for key in ("median", "max"):
        if not _number(stats.get(key)):
            raise ResultsError(
                f"{where} ({fullname}): stats.{key} must be a number of seconds, got "
                f"{stats.get(key)!r}",
                path=path,
                source=SOURCE,
            )
    rounds = stats.get("rounds")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise ResultsError(
            f"{where} ({fullname}): stats.rounds must be a count, got {rounds!r}",
            path=path,
            source=SOURCE,
        )
    data = stats.get("data", [])
    if not isinstance(data, list) or not all(_number(value) for value in data):
        raise ResultsError(
            f"{where} ({fullname}): stats.data must be a list of seconds", path=path, source=SOURCE
        )
    return {
        "name": name,
        "fullname": fullname,
        "median": float(stats["median"]),
        "max": float(stats["max"]),
        "rounds": rounds,
        "data": [float(value) for value in data],
    }
