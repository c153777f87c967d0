"""SLO markers: percentile math, marker validation, verdicts, summary, report, xdist merge."""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path
from typing import Any

import numpy
import pytest

from pytest_certstore import SloSampler, percentile
from pytest_certstore.errors import SloMarkerError
from pytest_certstore.slo_marker import evaluate, parse_marker

pytest_plugins = ["pytester"]

# pytester restores sys.modules after each in-process run, so whatever a run imports first is
# re-imported -- and assertion-rewritten, ~3 s -- by the next run. Hypothesis' pytest plugin
# imports this in every run's terminal summary: import it once, here.
import hypothesis.internal.observability  # noqa: E402, F401

SLO_TESTS = """
import pytest

@pytest.mark.slo(p50_ms=25, p95_ms=50, error_rate=0.05, min_samples=20, name="fast-get")
def test_meets(slo_sampler):
    for ms in range(1, 41):
        slo_sampler.record(ms)

@pytest.mark.slo(p95_ms=30, min_samples=20)
def test_misses(slo_sampler):
    for ms in range(1, 41):
        slo_sampler.record(ms)

@pytest.mark.slo(p99_ms=100, min_samples=50)
def test_too_few(slo_sampler):
    for ms in range(10):
        slo_sampler.record(5)

@pytest.mark.slo(error_rate=0.3, min_samples=10)
def test_errors(slo_sampler):
    for i in range(20):
        with slo_sampler.measure(errors=(ValueError,)):
            if i % 4 == 0:
                raise ValueError("tolerated")

def test_plain():
    pass
"""


def _report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _comparable(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Objectives minus the worker name, and minus wall-clock figures of the one timed test."""
    timed = ("worker", "measured", "latencies_ms")
    return [
        {
            k: v
            for k, v in o.items()
            if k != "worker" and not (o["test_id"].endswith("test_errors") and k in timed)
        }
        for o in report["objectives"]
    ]


def test_percentile_matches_numpys_default_linear_method() -> None:
    rng = random.Random(3)
    for size in (1, 2, 3, 10, 101):
        values = [rng.uniform(0, 100) for _ in range(size)]
        for p in (0, 1, 50, 90, 95, 99, 100):
            assert percentile(values, p) == pytest.approx(float(numpy.percentile(values, p)))
    with pytest.raises(ValueError):
        percentile([], 50)


def test_evaluate_verdicts() -> None:
    target = parse_marker((), {"p95_ms": 50, "error_rate": 0.1, "min_samples": 5})
    assert evaluate(target, [10.0] * 5, 0)[0] == "pass"
    verdict, measured, failures = evaluate(target, [10.0] * 4 + [70.0], 1)
    assert verdict == "fail" and measured["error_rate"] == 0.2
    assert len(failures) == 2 and failures[0].startswith("p95_ms: measured")
    assert evaluate(target, [10.0] * 4, 0)[0] == "too_few_samples"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((50,), {}, "keyword arguments only"),
        ((), {"p95": 50}, "unknown argument.*p95"),
        ((), {"p95_ms": -1}, "must be a finite number > 0"),
        ((), {"p95_ms": True}, "must be a finite number > 0"),
        ((), {"p95_ms": float("nan")}, "could never fail"),
        ((), {"p99_ms": float("inf")}, "could never fail"),
        ((), {"error_rate": float("nan")}, "fraction from 0 to 1"),
        ((), {"error_rate": 5}, "fraction from 0 to 1"),
        ((), {"p95_ms": 5, "min_samples": 0}, "whole number >= 1"),
        ((), {"min_samples": 5}, "at least one objective"),
        ((), {"p95_ms": 5, "name": ""}, "non-empty string"),
    ],
)
def test_marker_arguments_are_validated(args: tuple, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SloMarkerError, match=message):
        parse_marker(args, kwargs)


def test_measure_records_errors_and_reraises_unless_tolerated() -> None:
    sampler = SloSampler()
    with sampler.measure():
        pass
    with sampler.measure(errors=(KeyError,)):
        raise KeyError("tolerated")
    with pytest.raises(RuntimeError), sampler.measure(errors=(KeyError,)):
        raise RuntimeError("not tolerated")
    assert len(sampler) == 3 and sampler.errors == 2
    with pytest.raises(ValueError, match="ms >= 0"):
        sampler.record(-1)


def test_verdicts_summary_and_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slos=SLO_TESTS)
    report = pytester.path / "out" / "slo.json"
    result = pytester.runpytest("--strict-markers", f"--slo-report={report}")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_misses*",
            "*p95_ms*30*38.05*FAIL*",
            "*too few samples: 10 < min_samples 50*",
            "*certstore SLOs*",
            "SLO fast-get (slo_sampler, 40 samples, 0 errors): PASS",
            "4 SLO(s): 2 pass, 1 fail, 1 too few samples, 0 error "
            "(mode enforce, percentiles linear)",
            f"SLO report written to {report}",
        ]
    )
    data = _report(report)
    assert data["format_version"] == 1 and data["mode"] == "enforce"
    assert data["percentile_method"] == "linear"
    # a file like any other (666 less the umask), not a private temporary file's 600
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(report.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in report.parent.iterdir()] == ["slo.json"]
    assert data["summary"] == {
        "objectives": 4,
        "pass": 2,
        "fail": 1,
        "too_few_samples": 1,
        "error": 0,
    }
    by_test = {o["test_id"].split("::")[1]: o for o in data["objectives"]}
    meets = by_test["test_meets"]
    assert meets["name"] == "fast-get"
    assert meets["target"] == {
        "p50_ms": 25.0,
        "p95_ms": 50.0,
        "error_rate": 0.05,
        "min_samples": 20,
    }
    assert meets["measured"]["p50_ms"] == pytest.approx(20.5)
    assert meets["measured"]["p95_ms"] == pytest.approx(38.05)
    assert meets["samples"] == 40 and meets["verdict"] == "pass"
    assert by_test["test_misses"]["verdict"] == "fail"
    assert by_test["test_too_few"]["verdict"] == "too_few_samples"
    errors = by_test["test_errors"]
    assert (errors["errors"], errors["measured"]["error_rate"]) == (5, 0.25)
    assert errors["verdict"] == "pass"


def test_report_mode_records_without_failing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slos=SLO_TESTS)
    report = pytester.path / "slo.json"
    result = pytester.runpytest("--slo-mode=report", f"--slo-report={report}")
    result.assert_outcomes(passed=5)
    data = _report(report)
    assert data["mode"] == "report"
    assert [o["verdict"] for o in data["objectives"]] == ["pass", "pass", "fail", "too_few_samples"]


def test_xdist_report_equals_the_serial_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slos=SLO_TESTS)
    serial, parallel = pytester.path / "serial.json", pytester.path / "parallel.json"
    pytester.runpytest(f"--slo-report={serial}").assert_outcomes(passed=3, failed=2)
    result = pytester.runpytest_subprocess("-n", "2", f"--slo-report={parallel}")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["4 SLO(s): 2 pass, 1 fail, 1 too few samples, 0 error*"])
    one, two = _report(serial), _report(parallel)
    assert _comparable(one) == _comparable(two)
    assert one["summary"] == two["summary"]
    assert {o["worker"] for o in two["objectives"]} <= {"gw0", "gw1"}


def test_marker_problems_error_at_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p95=50)
        def test_typo(slo_sampler):
            raise AssertionError("must not run")

        @pytest.mark.slo(p95_ms=50)
        def test_nothing_measured():
            raise AssertionError("must not run")

        @pytest.mark.slo(p95_ms=50)
        @pytest.mark.slo(p99_ms=80)
        def test_stacked(slo_sampler):
            raise AssertionError("must not run")

        @pytest.mark.slo(p95_ms="50")
        def test_text_limit(slo_sampler):
            raise AssertionError("must not run")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [
            "*SloMarkerError: @pytest.mark.slo got unknown argument(s) p95*",
            "*uses neither the slo_sampler fixture nor*benchmark*",
            "*has 2 @pytest.mark.slo markers; give one*",
            "*p95_ms='50' must be a finite number > 0 (milliseconds)",
        ]
    )


def test_in_process_targets_and_benchmark_samples(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside an xdist worker the inner run would inherit this and pytest-benchmark would
    # disable itself.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p95_ms=1000, min_samples=5)
        def test_on_fake(s3, slo_sampler):
            for _ in range(5):
                with slo_sampler.measure():
                    s3.client.head_bucket(Bucket=s3.bucket)

        @pytest.mark.slo(p99_ms=1000, min_samples=20)
        def test_bench(benchmark):
            benchmark.pedantic(lambda: sum(range(100)), rounds=20, iterations=1)

        @pytest.mark.slo(p99_ms=1000, min_samples=5)
        def test_broken(slo_sampler):
            slo_sampler.record(1)
            raise RuntimeError("boom")
        """
    )
    report = pytester.path / "r.json"
    result = pytester.runpytest(f"--slo-report={report}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*warning: measured on an in-process S3 (s3)*"])
    by_test = {o["test_id"].split("::")[1]: o for o in _report(report)["objectives"]}
    assert by_test["test_bench"]["source"] == "benchmark"
    assert by_test["test_bench"]["samples"] == 20
    assert by_test["test_on_fake"]["warnings"]
    assert by_test["test_broken"]["verdict"] == "error"
    assert "RuntimeError: boom" in by_test["test_broken"]["failures"][0]


def test_a_disabled_benchmark_skips_instead_of_judging_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p99_ms=1000, min_samples=5)
        def test_bench(benchmark):
            benchmark.pedantic(lambda: None, rounds=5, iterations=1)
        """
    )
    result = pytester.runpytest("--benchmark-disable", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*slo not judged: pytest-benchmark is disabled*"])


def test_set_up_failures_are_reported_and_expected_failures_are_not(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("no endpoint")

        @pytest.mark.slo(p95_ms=50, min_samples=1)
        def test_fixture_fails(broken, slo_sampler):
            pass

        @pytest.mark.xfail(reason="known slow path", strict=True)
        @pytest.mark.slo(p95_ms=50, min_samples=1)
        def test_expected_to_fail(slo_sampler):
            raise AssertionError("known")
        """
    )
    report = pytester.path / "slo.json"
    result = pytester.runpytest(f"--slo-report={report}")
    result.assert_outcomes(errors=1, xfailed=1)
    data = _report(report)
    assert data["summary"]["objectives"] == 1 and data["summary"]["error"] == 1
    (only,) = data["objectives"]
    assert only["test_id"].endswith("test_fixture_fails") and only["verdict"] == "error"
    assert "set-up failed: RuntimeError: no endpoint" in only["failures"][0]
