"""Every reader on real output produced by a real run, and a clear error for malformed input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slo import NO_DATA, PASS, ResultsError, evaluate, parse_spec
from slo.readers import (
    LocustCsvStats,
    LocustStats,
    Measurement,
    NoMatch,
    read_benchmark_json,
    read_coverage_json,
    read_locust,
    read_locust_csv,
    read_locust_json,
    read_pytest_report,
)
from slo.spec import Scenario
from tests.slo.slo_helpers import LocustRun


def _locust(name: str, request_type: str | None = "GET") -> Scenario:
    return Scenario(
        name="s",
        source="locust",
        limits={"p95_ms": 1},
        request_type=request_type,
        request_name=name,
    )


def _measure(results: object, scenario: Scenario) -> Measurement:
    found = results.measure(scenario)  # type: ignore[attr-defined]
    assert isinstance(found, Measurement), found
    return found


class TestLocustOnARealRun:
    def test_json_has_every_entry_with_real_figures(self, locust_run: LocustRun) -> None:
        stats = read_locust_json(locust_run.prefix.with_suffix(".json"))
        fast = _measure(stats, _locust("fast"))
        slow = _measure(stats, _locust("slow"))
        fail = _measure(stats, _locust("fail"))
        assert fast.samples > 20 and fast.failures == 0 and fast.error_rate == 0
        # /slow sleeps 30 ms: every bucketed percentile is at least that.
        assert 30 <= slow.latency["p50_ms"] <= slow.latency["p95_ms"] <= slow.latency["p99_ms"]
        # max is exact, p99 a bucket: it may read up to half a bucket above max (Locust's
        # buckets: 1 ms below 100 ms, 10 ms to 1 s, 100 ms above; a stalled machine gets there)
        half_bucket = 50 if slow.latency["p99_ms"] >= 1000 else 5
        assert slow.latency["max_ms"] >= slow.latency["p99_ms"] - half_bucket
        assert fail.samples > 0 and fail.failures == fail.samples and fail.error_rate == 1.0
        assert "buckets" in fast.method

    def test_csv_agrees_with_json_where_it_can(self, locust_run: LocustRun) -> None:
        csv_stats = read_locust_csv(Path(f"{locust_run.prefix}_stats.csv"))
        json_stats = read_locust_json(locust_run.prefix.with_suffix(".json"))
        for name in ("fast", "slow", "fail"):
            from_csv = _measure(csv_stats, _locust(name))
            from_json = _measure(json_stats, _locust(name))
            # The CSV is a snapshot written once a second: never more requests than the JSON.
            assert 0 < from_csv.samples <= from_json.samples
        assert _measure(csv_stats, _locust("slow")).latency["p50_ms"] >= 30
        total = _measure(csv_stats, _locust("Aggregated", request_type=None))
        assert total.matched == ("Aggregated",)

    def test_read_locust_resolves_prefix_folder_and_files(self, locust_run: LocustRun) -> None:
        prefix = locust_run.prefix
        assert isinstance(read_locust(prefix), LocustStats)  # the JSON is preferred
        assert isinstance(read_locust(prefix.parent), LocustStats)
        assert isinstance(read_locust(f"{prefix}_stats.csv"), LocustCsvStats)
        assert isinstance(read_locust(prefix.with_suffix(".json")), LocustStats)

    def test_csv_only_prefix_falls_back_to_csv(self, locust_run: LocustRun, tmp_path: Path) -> None:
        shutil.copy(f"{locust_run.prefix}_stats.csv", tmp_path / "only_stats.csv")
        assert isinstance(read_locust(tmp_path / "only"), LocustCsvStats)

    def test_csv_cannot_pool_rows(self, locust_run: LocustRun, tmp_path: Path) -> None:
        source = Path(f"{locust_run.prefix}_stats.csv").read_text(encoding="utf-8")
        lines = source.splitlines()
        fast = next(line for line in lines if line.startswith("GET,fast,"))
        doubled = tmp_path / "d_stats.csv"
        doubled.write_text("\n".join([*lines, fast.replace("GET,", "POST,", 1)]) + "\n", "utf-8")
        found = read_locust_csv(doubled).measure(_locust("fast", request_type=None))
        assert isinstance(found, NoMatch) and "cannot be pooled" in found.reason

    def test_gate_judges_the_run(self, locust_run: LocustRun) -> None:
        spec = parse_spec(
            {
                "scenarios": {
                    "fast": {
                        "source": "locust",
                        "request_type": "GET",
                        "name": "fast",
                        "p95_ms": 5000,
                        "error_rate": 0.0,
                        "min_samples": 10,
                    },
                    "fail": {
                        "source": "locust",
                        "request_type": "GET",
                        "name": "fail",
                        "error_rate": 0.01,
                    },
                    "typo": {
                        "source": "locust",
                        "request_type": "GET",
                        "name": "fsat",
                        "p95_ms": 5000,
                    },
                }
            }
        )
        verdict = evaluate(spec, {"locust": read_locust(locust_run.prefix)})
        statuses = {result.objective.id: result.status for result in verdict.results}
        assert statuses == {
            "fast.p95_ms": PASS,
            "fast.error_rate": PASS,
            "fail.error_rate": "FAIL",
            "typo.p95_ms": NO_DATA,
        }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("{not json", "not valid JSON"),
        ('{"name": "x"}', "expected a JSON list of Locust stats entries"),
        ('[{"name": "x"}]', "entry 0: missing field 'num_requests'"),
        (
            '[{"name": "x", "method": "GET", "num_requests": 1, "num_failures": 0,'
            ' "response_times": {"abc": 1}}]',
            "response_times key 'abc' is not a number of ms",
        ),
        (
            '[{"name": "x", "method": "GET", "num_requests": 1, "num_failures": 2,'
            ' "response_times": {}}]',
            "num_failures 2 exceeds num_requests 1",
        ),
        (
            '[{"name": "x", "method": "GET", "num_requests": 1, "num_failures": 0,'
            ' "response_times": {"-500": 1}}]',
            "response_times key '-500' is not a number of ms >= 0",
        ),
        (
            '[{"name": "x", "method": "GET", "num_requests": 1, "num_failures": 0,'
            ' "max_response_time": -1, "response_times": {"5": 1}}]',
            "'max_response_time' must be a number of ms >= 0",
        ),
    ],
)
def test_malformed_locust_json(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultsError, match=expected) as caught:
        read_locust(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Type,Name\nGET,x\n", "missing column"),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,many,0,1,2,2,3,4\n",
            "line 2: column 'Request Count' is not a whole number: 'many'",
        ),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,3,0,1,2,fast,3,4\n",
            "line 2: column '95%' is not a number of ms",
        ),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,3,0,1,2,-50,3,4\n",
            "line 2: column '95%' is not a number of ms >= 0: '-50'",
        ),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,3,0,1,2,3,3,nan\n",
            "column 'Max Response Time' is not a number of ms >= 0",
        ),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,30,0,9,9,12,1\n",
            "line 2: has 8 columns, the header has 9",
        ),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,30,0,9,12,1,20,25\n",
            "not in increasing order",
        ),
        (
            "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
            "GET,x,30,0,9,12,15,20,25,7\n",
            "has 10 columns, the header has 9",
        ),
        ("", "is empty"),
    ],
    ids=[
        "missing-columns",
        "bad-count",
        "bad-percentile",
        "negative",
        "nan",
        "cut-off-row",
        "out-of-order",
        "extra-column",
        "empty",
    ],
)
def test_malformed_locust_csv(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad_stats.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultsError, match=expected):
        read_locust(path)


def test_an_unreadable_locust_csv_is_a_results_error(tmp_path: Path) -> None:
    path = tmp_path / "run_stats.csv"
    path.mkdir()  # reading a folder fails with an OSError other than FileNotFoundError
    with pytest.raises(ResultsError, match="cannot read"):
        read_locust_csv(path)


def test_a_rounded_99th_percentile_above_the_exact_maximum_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ok_stats.csv"
    path.write_text(
        "Type,Name,Request Count,Failure Count,50%,90%,95%,99%,Max Response Time\n"
        "GET,x,30,0,90,120,140,150,147\n",
        encoding="utf-8",
    )
    assert read_locust(path).rows[0]["p99_ms"] == 150.0


def test_a_locust_entry_without_its_maximum_uses_the_slowest_bucket(tmp_path: Path) -> None:
    """Absent, the maximum must not read as 0 ms (which passes any max_ms objective)."""
    path = tmp_path / "nomax.json"
    path.write_text(
        '[{"name": "save", "method": "STORAGE", "num_requests": 10, "num_failures": 0,'
        ' "response_times": {"500": 9, "20": 1}}]',
        encoding="utf-8",
    )
    stats = read_locust(path)
    assert stats.entries[0]["max_response_time"] == 500.0


def test_missing_locust_results_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no Locust results"):
        read_locust(tmp_path / "run")
    with pytest.raises(ResultsError, match="holds no Locust results"):
        read_locust(tmp_path)
    (tmp_path / "x.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ResultsError, match="not a Locust results file"):
        read_locust(tmp_path / "x.txt")


class TestBenchmark:
    def _scenario(self, pattern: str) -> Scenario:
        return Scenario(name="b", source="benchmark", limits={"p95_ms": 1}, benchmark=pattern)

    def test_raw_timings_give_every_percentile(self, benchmark_json: Path) -> None:
        results = read_benchmark_json(benchmark_json)
        sleepy = _measure(results, self._scenario("test_sleepy"))
        assert sleepy.samples == 30 and sleepy.failures is None
        assert 2.0 <= sleepy.latency["p50_ms"] <= sleepy.latency["p95_ms"]
        assert sleepy.latency["p99_ms"] <= sleepy.latency["max_ms"]
        assert sleepy.matched == ("test_tiny_bench.py::test_sleepy",)
        pooled = _measure(results, self._scenario("*test_*"))
        assert pooled.samples == 80 and len(pooled.matched) == 2

    def test_without_raw_timings_p95_is_no_data(self, benchmark_json_summary: Path) -> None:
        results = read_benchmark_json(benchmark_json_summary)
        spec = parse_spec(
            {
                "scenarios": {
                    "b": {
                        "source": "benchmark",
                        "benchmark": "test_sleepy",
                        "p50_ms": 1000,
                        "p95_ms": 1000,
                    }
                }
            }
        )
        p50, p95 = evaluate(spec, {"benchmark": results}).results
        assert p50.status == PASS and p50.measured >= 2.0
        assert p95.status == NO_DATA and "--benchmark-save-data" in p95.reason

    def test_no_match_lists_benchmarks(self, benchmark_json: Path) -> None:
        found = read_benchmark_json(benchmark_json).measure(self._scenario("test_nope"))
        assert isinstance(found, NoMatch) and "test_sleepy" in found.reason

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            ({"machine_info": {}}, "expected an object with a 'benchmarks' list"),
            ({"benchmarks": [{"name": "a", "fullname": "a"}]}, "missing 'stats' object"),
            (
                {
                    "benchmarks": [
                        {
                            "name": "a",
                            "fullname": "a",
                            "stats": {"median": "x", "max": 1, "rounds": 1},
                        }
                    ]
                },
                "stats.median must be a number of seconds",
            ),
        ],
    )
    def test_malformed(self, tmp_path: Path, document: object, expected: str) -> None:
        path = tmp_path / "bench.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(ResultsError, match=expected):
            read_benchmark_json(path)


class TestCoverage:
    def test_real_report(self, coverage_json: Path) -> None:
        results = read_coverage_json(coverage_json)
        full = results.file("pkg/full.py")
        half = results.file("./half.py")
        assert not isinstance(full, NoMatch) and full.percent == 100.0
        assert not isinstance(half, NoMatch) and 0 < half.percent < 100
        assert half.percent < results.total.percent < 100
        assert isinstance(results.file("pkg/absent.py"), NoMatch)

    def test_gate_on_real_report(self, coverage_json: Path) -> None:
        spec = parse_spec(
            {"coverage": {"total": 50, "files": {"pkg/full.py": 100, "pkg/half.py": 90}}}
        )
        verdict = evaluate(spec, {"coverage": read_coverage_json(coverage_json)})
        assert [r.status for r in verdict.results] == [PASS, PASS, "FAIL"]

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            ({"files": {}}, "no 'totals' object"),
            ({"totals": {"percent_covered": 50}}, "no 'files' object"),
            ({"totals": {"percent_covered": 150}, "files": {}}, "must be a percentage"),
            ({"totals": {"percent_covered": 50}, "files": {"a.py": {}}}, "missing 'summary'"),
        ],
    )
    def test_malformed(self, tmp_path: Path, document: object, expected: str) -> None:
        path = tmp_path / "coverage.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(ResultsError, match=expected):
            read_coverage_json(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ResultsError, match=r"no such file.*not a pass"):
            read_coverage_json(tmp_path / "coverage.json")


class TestPytestPluginReport:
    def test_real_report(self, plugin_report: Path) -> None:
        report = read_pytest_report(plugin_report)
        spec = parse_spec(
            {
                "scenarios": {
                    "fast": {
                        "source": "pytest",
                        "test": "*::test_fast",
                        "p50_ms": 21,
                        "p95_ms": 38.1,
                        "max_ms": 40,
                        "min_samples": 40,
                    },
                    "flaky": {"source": "pytest", "test": "*test_flaky", "error_rate": 0.2},
                    "tiny": {
                        "source": "pytest",
                        "test": "*::test_too_slow",
                        "p95_ms": 1000,
                        "min_samples": 5,
                    },
                    "gone": {"source": "pytest", "test": "*::test_renamed", "p95_ms": 1000},
                }
            }
        )
        results = {r.objective.id: r for r in evaluate(spec, {"pytest": report}).results}
        # Type 7 over 1..40 ms, h = 39 * p / 100: p50 h = 19.5 -> 20.5; p95 h = 37.05 -> 38.05.
        assert (results["fast.p50_ms"].status, results["fast.p50_ms"].measured) == (PASS, 20.5)
        assert results["fast.p95_ms"].status == PASS
        assert results["fast.p95_ms"].measured == pytest.approx(38.05)
        # One method everywhere: the gate's recomputed figures are the plugin's own.
        document = json.loads(plugin_report.read_text(encoding="utf-8"))
        (fast,) = [o for o in document["objectives"] if o["test_id"].endswith("::test_fast")]
        assert fast["measured"]["p50_ms"] == results["fast.p50_ms"].measured
        assert fast["measured"]["p95_ms"] == results["fast.p95_ms"].measured
        assert results["fast.max_ms"].measured == 40.0
        assert results["flaky.error_rate"].status == "FAIL"
        assert results["flaky.error_rate"].measured == 0.25
        assert results["tiny.p95_ms"].status == NO_DATA
        assert "1 samples, fewer than min_samples = 5" in results["tiny.p95_ms"].reason
        assert results["gone.p95_ms"].status == NO_DATA
        assert "test_plugin_slo.py::test_fast" in results["gone.p95_ms"].reason

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            ([], "expected a JSON object"),
            ({"format_version": 7, "objectives": []}, "format_version 7 is not one"),
            ({"format_version": 1}, "missing 'objectives' list"),
            ({"format_version": 1, "objectives": [{"samples": 1}]}, "'test_id' must be"),
            (
                {
                    "format_version": 1,
                    "objectives": [{"test_id": "t", "samples": 1, "errors": 2, "verdict": "pass"}],
                },
                "errors <= samples",
            ),
            (
                {
                    "format_version": 1,
                    "objectives": [
                        {"test_id": "t", "samples": 1, "latencies_ms": ["x"], "verdict": "pass"}
                    ],
                },
                "'latencies_ms' must be a list of ms",
            ),
        ],
    )
    def test_malformed(self, tmp_path: Path, document: object, expected: str) -> None:
        path = tmp_path / "slo-report.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(ResultsError, match=expected):
            read_pytest_report(path)
