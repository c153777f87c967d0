"""Every objective kind passing and failing, NO DATA in each of its forms, and regressions."""

from __future__ import annotations

from typing import Any

import pytest

from slo import FAIL, NO_DATA, PASS, evaluate, parse_spec
from slo.readers import CoverageFigure, CoverageResults, LocustStats, PytestSloReport


def _entry(name: str, method: str, buckets: dict[int, int], failures: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "method": method,
        "num_requests": sum(buckets.values()),
        "num_none_requests": 0,
        "num_failures": failures,
        "response_times": {str(key): count for key, count in buckets.items()},
        "max_response_time": float(max(buckets)) + 0.4,
    }


# 100 uploads: 90 at 20 ms, 5 at 60 ms, 4 at 110 ms, 1 at 300 ms. Type 7, h = 99 * p / 100:
# p50 h = 49.5 -> 20; p95 h = 94.05 -> 60 + 0.05 * (110 - 60) = 62.5;
# p99 h = 98.01 -> 110 + 0.01 * (300 - 110) = 111.9.
UPLOADS = _entry("/c/[key]", "PUT", {20: 90, 60: 5, 110: 4, 300: 1}, failures=2)
STATS = LocustStats([UPLOADS, _entry("/c/[key]", "GET", {5: 10})], path="mem")


def _spec(**limits: Any) -> Any:
    body = {"source": "locust", "request_type": "PUT", "name": "/c/[key]", **limits}
    return parse_spec({"scenarios": {"upload": body}})


def _only(verdict: Any) -> Any:
    assert len(verdict.results) == 1
    return verdict.results[0]


@pytest.mark.parametrize(
    ("kind", "passing", "failing", "measured"),
    [
        ("p50_ms", 20, 19, 20.0),
        ("p95_ms", 62.5, 62.4, 62.5),
        ("p99_ms", 112, 111.8, 111.9),
        ("max_ms", 301, 300, 300.4),
        ("error_rate", 0.02, 0.019, 0.02),
    ],
)
def test_latency_and_error_rate_objectives_pass_and_fail(
    kind: str, passing: float, failing: float, measured: float
) -> None:
    ok = _only(evaluate(_spec(**{kind: passing}), {"locust": STATS}))
    assert (ok.status, ok.measured, ok.samples) == (PASS, pytest.approx(measured), 100)
    assert ok.margin == pytest.approx(passing - measured)
    bad = _only(evaluate(_spec(**{kind: failing}), {"locust": STATS}))
    assert bad.status == FAIL
    assert "above the target" in bad.reason
    assert bad.margin is not None and bad.margin < 0


def test_coverage_objectives_pass_and_fail() -> None:
    coverage = CoverageResults(
        CoverageFigure(85.0, "(total)", 100),
        {"src/certstore/storage.py": CoverageFigure(91.0, "src/certstore/storage.py", 50)},
        path="cov.json",
    )
    passing = parse_spec({"coverage": {"total": 85, "files": {"certstore/storage.py": 90}}})
    verdict = evaluate(passing, {"coverage": coverage})
    assert [r.status for r in verdict.results] == [PASS, PASS]
    assert verdict.passed
    failing = parse_spec({"coverage": {"total": 85.1, "files": {"certstore/storage.py": 92}}})
    verdict = evaluate(failing, {"coverage": coverage})
    assert [r.status for r in verdict.results] == [FAIL, FAIL]
    assert "85.0 % is below the target 85.1 %" in verdict.results[0].reason


def test_no_data_when_source_not_given() -> None:
    result = _only(evaluate(_spec(p95_ms=100), {}))
    assert result.status == NO_DATA
    assert "no locust results were given (--locust)" in result.reason


def test_no_data_when_selector_matches_nothing_lists_what_exists() -> None:
    spec = parse_spec({"scenarios": {"x": {"source": "locust", "name": "/nope", "p95_ms": 1000}}})
    result = _only(evaluate(spec, {"locust": STATS}))
    assert result.status == NO_DATA
    assert "no Locust entry" in result.reason and "'PUT /c/[key]'" in result.reason


def test_no_data_when_too_few_samples_even_if_fast() -> None:
    result = _only(evaluate(_spec(p95_ms=1000, min_samples=101), {"locust": STATS}))
    assert result.status == NO_DATA
    assert "100 samples, fewer than min_samples = 101" in result.reason
    assert not evaluate(_spec(p95_ms=1000, min_samples=101), {"locust": STATS}).passed


def test_no_data_when_a_coverage_file_was_not_measured() -> None:
    coverage = CoverageResults(CoverageFigure(85.0, "(total)", 1), {}, path="cov.json")
    spec = parse_spec({"coverage": {"files": {"certstore/storage.py": 90}}})
    result = _only(evaluate(spec, {"coverage": coverage}))
    assert result.status == NO_DATA and "not in the coverage report" in result.reason


def test_a_coverage_report_that_measured_nothing_is_no_data() -> None:
    """coverage.py writes percent_covered 100 for zero statements: no floor is met by that."""
    empty = CoverageResults(
        CoverageFigure(100.0, "(total)", 0),
        {"certstore/storage.py": CoverageFigure(100.0, "certstore/storage.py", 0)},
        path="cov.json",
    )
    spec = parse_spec({"coverage": {"total": 80, "files": {"certstore/storage.py": 90}}})
    verdict = evaluate(spec, {"coverage": empty})
    assert [r.status for r in verdict.results] == [NO_DATA, NO_DATA]
    assert "no statements measured" in verdict.results[0].reason
    assert not verdict.passed


def test_aggregated_pools_every_entry() -> None:
    spec = parse_spec(
        {"scenarios": {"all": {"source": "locust", "name": "Aggregated", "p50_ms": 20}}}
    )
    result = _only(evaluate(spec, {"locust": STATS}))
    assert result.samples == 110 and result.measured == 20.0


def _record(test_id: str, latencies: list[float], errors: int, **extra: Any) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "samples": len(latencies),
        "errors": errors,
        "measured": {},
        "latencies_ms": latencies,
        "verdict": "pass",
        "why": "",
        **extra,
    }


def test_pytest_records_pool_their_raw_samples() -> None:
    report = PytestSloReport(
        [
            _record("t.py::a", [float(v) for v in range(1, 41)], 0),
            _record("t.py::b", [100.0] * 20, 3),
            _record("u.py::c", [1000.0] * 20, 0),
        ],
        path="r.json",
    )
    spec = parse_spec(
        {
            "scenarios": {
                "t": {
                    "source": "pytest",
                    "test": "t.py::*",
                    "p50_ms": 31,
                    "p95_ms": 100,
                    "error_rate": 0.04,
                    "min_samples": 60,
                }
            }
        }
    )
    p50, p95, error_rate = evaluate(spec, {"pytest": report}).results
    # Pooled 60 samples: 1..40 then twenty 100s. Type 7, h = 59 * p / 100: p50 h = 29.5 ->
    # 30 + 0.5 * (31 - 30) = 30.5; p95 h = 56.05 -> ranks 56 and 57 are both 100.
    assert (p50.status, p50.measured, p50.samples) == (PASS, 30.5, 60)
    assert (p95.status, p95.measured) == (PASS, 100.0)
    assert error_rate.status == FAIL and error_rate.measured == pytest.approx(3 / 60)


def test_pytest_records_without_raw_samples_combine_worst_case() -> None:
    report = PytestSloReport(
        [
            _record("t.py::a", [], 0, samples=40, measured={"p95_ms": 30.0}),
            _record("t.py::b", [], 2, samples=20, measured={"p95_ms": 45.0}),
        ],
        path="r.json",
    )
    spec = parse_spec(
        {
            "scenarios": {
                "t": {
                    "source": "pytest",
                    "test": "t.py::*",
                    "p95_ms": 50,
                    "p99_ms": 60,
                    "error_rate": 0.01,
                    "min_samples": 20,
                }
            }
        }
    )
    p95, p99, error_rate = evaluate(spec, {"pytest": report}).results
    assert (p95.status, p95.measured, p95.samples) == (PASS, 45.0, 20)
    assert p99.status == NO_DATA and "not in the report" in p99.reason
    assert error_rate.status == FAIL and error_rate.measured == pytest.approx(2 / 60)


def test_pytest_record_of_a_broken_test_is_no_data() -> None:
    report = PytestSloReport(
        [_record("t.py::a", [1.0] * 5, 0, verdict="error", why="boom")], path="r.json"
    )
    spec = parse_spec({"scenarios": {"t": {"source": "pytest", "test": "t.py::a", "p95_ms": 50}}})
    result = _only(evaluate(spec, {"pytest": report}))
    assert result.status == NO_DATA
    assert result.reason == "t.py::a failed before its SLO could be judged: boom"


def test_empty_verdict_never_passes() -> None:
    verdict = evaluate(_spec(p95_ms=100), {"locust": STATS}, sources={"pytest"})
    assert verdict.results == () and not verdict.passed


class TestBaseline:
    def test_regression_beyond_tolerance_fails_within_target(self) -> None:
        spec = _spec(p95_ms=75, regression_tolerance=0.2)
        result = _only(evaluate(spec, {"locust": STATS}, baseline={"upload.p95_ms": 45.0}))
        assert result.status == FAIL
        assert result.baseline == 45.0
        assert "regressed: 62.5 ms against the baseline's 45.0 ms (+39%, tolerance 20%)" in (
            result.reason
        )

    def test_growth_within_tolerance_passes(self) -> None:
        spec = _spec(p95_ms=75, regression_tolerance=0.4)
        result = _only(evaluate(spec, {"locust": STATS}, baseline={"upload.p95_ms": 45.0}))
        assert (result.status, result.baseline) == (PASS, 45.0)

    def test_growth_under_the_absolute_floor_is_noise(self) -> None:
        spec = parse_spec(
            {
                "gate": {"regression_min_ms": 25.0},
                "scenarios": {
                    "upload": {
                        "source": "locust",
                        "request_type": "PUT",
                        "name": "/c/[key]",
                        "p95_ms": 75,
                        "regression_tolerance": 0.1,
                    }
                },
            }
        )
        result = _only(evaluate(spec, {"locust": STATS}, baseline={"upload.p95_ms": 40.0}))
        assert result.status == PASS

    def test_a_zero_ms_baseline_still_catches_a_regression(self) -> None:
        """Locust rounds anything under 0.5 ms to 0: such a baseline is real, and 62.5 ms
        against it is a regression (regression_min_ms decides)."""
        spec = _spec(p95_ms=75, regression_tolerance=0.2)
        result = _only(evaluate(spec, {"locust": STATS}, baseline={"upload.p95_ms": 0.0}))
        assert result.status == FAIL
        assert "regressed: 62.5 ms against the baseline's 0.0 ms (tolerance 20%)" in (result.reason)

    def test_error_rate_and_missing_baseline_are_not_regressions(self) -> None:
        spec = _spec(error_rate=0.05, p99_ms=200)
        verdict = evaluate(spec, {"locust": STATS}, baseline={"upload.error_rate": 0.0})
        assert [r.status for r in verdict.results] == [PASS, PASS]
        assert verdict.results[1].baseline is None
