"""The Go/No-Go checklist: every check passes on good values and fails on bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstore.rehearsal import (
    CHECK_IDS,
    FAIL,
    GO,
    NO_GO,
    PASS,
    SKIP,
    Measure,
    Thresholds,
    ThresholdsError,
    evaluate,
    load_thresholds,
    verdict,
)
from certstore.rehearsal._checklist import flags_measure

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "go-no-go.toml"

#: A healthy rehearsal's measures: every check passes.
HEALTHY: dict[str, Measure] = {
    "upload_p95": Measure(12.0),
    "upload_p99": Measure(20.0),
    "url_p95": Measure(0.4),
    "download_p95": Measure(3.0),
    "hash_success": Measure(100.0),
    "error_rate": Measure(0.0),
    "fallback_rate": Measure(0.0),
    "consistency": Measure(100.0),
    "completed": Measure(True),
    "backfill_complete": Measure(True),
    "fallback_probe": Measure(True),
    "lifecycle_valid": Measure(True),
    "production_flags": Measure(True),
    "rehearsal_flags": Measure(True),
}


def statuses(measures: dict[str, Measure], thresholds: Thresholds | None = None) -> dict[str, str]:
    return {r.id: r.status for r in evaluate(measures, thresholds)}


def test_healthy_measures_are_go_with_every_check_listed() -> None:
    results = evaluate(HEALTHY)
    assert [r.id for r in results] == list(CHECK_IDS)
    assert set(CHECK_IDS) == set(HEALTHY)
    assert all(r.status == PASS for r in results)
    assert verdict(results) == GO


# (check, value that just passes, value that just fails) at the default thresholds
BOUNDARIES = [
    ("upload_p95", 75.0, 75.01),
    ("upload_p99", 120.0, 120.5),
    ("url_p95", 50.0, 50.1),
    ("download_p95", 500.0, 500.1),
    ("hash_success", 99.9, 99.89),
    ("error_rate", 0.99, 1.0),
    ("fallback_rate", 0.99, 1.0),
    ("consistency", 100.0, 99.99),
]


@pytest.mark.parametrize(("check", "good", "bad"), BOUNDARIES)
def test_each_numeric_threshold_fails_past_its_limit(check: str, good: float, bad: float) -> None:
    assert statuses({**HEALTHY, check: Measure(good)})[check] == PASS
    results = evaluate({**HEALTHY, check: Measure(bad)})
    failed = [r for r in results if r.status == FAIL]
    assert [r.id for r in failed] == [check]
    assert verdict(results) == NO_GO


@pytest.mark.parametrize(
    "check",
    [
        "completed",
        "backfill_complete",
        "fallback_probe",
        "lifecycle_valid",
        "production_flags",
        "rehearsal_flags",
    ],
)
def test_each_boolean_check_fails_when_false(check: str) -> None:
    results = evaluate({**HEALTHY, check: Measure(False, "no", note="why")})
    failed = [r for r in results if r.status == FAIL]
    assert [(r.id, r.note) for r in failed] == [(check, "why")]
    assert verdict(results) == NO_GO


@pytest.mark.parametrize("check", CHECK_IDS)
def test_a_step_that_could_not_run_fails_and_says_why(check: str) -> None:
    results = evaluate({**HEALTHY, check: Measure(None, fail="module missing")})
    result = next(r for r in results if r.id == check)
    assert result.status == FAIL and result.note == "module missing"
    missing = evaluate({k: v for k, v in HEALTHY.items() if k != check})
    assert next(r for r in missing if r.id == check).status == FAIL


def test_a_deliberate_skip_is_shown_and_does_not_fail() -> None:
    results = evaluate({**HEALTHY, "lifecycle_valid": Measure(None, skip="--skip-lifecycle")})
    skipped = [r for r in results if r.status == SKIP]
    assert [(r.id, r.note) for r in skipped] == [("lifecycle_valid", "--skip-lifecycle")]
    assert verdict(results) == GO


def test_thresholds_can_be_tightened_and_loosened() -> None:
    strict = Thresholds(upload_p95_ms=10.0)
    assert statuses(HEALTHY, strict)["upload_p95"] == FAIL
    loose = Thresholds(error_rate_max_percent=5.0)
    assert statuses({**HEALTHY, "error_rate": Measure(3.0)}, loose)["error_rate"] == PASS


def test_results_carry_measured_value_and_threshold() -> None:
    result = evaluate({**HEALTHY, "upload_p95": Measure(80.0, "80.0 ms", note="n=250")})[0]
    assert (result.title, result.measured, result.threshold, result.note) == (
        "Upload p95",
        "80.0 ms",
        "<= 75.0 ms",
        "n=250",
    )
    assert result.as_dict()["status"] == FAIL


def test_the_example_thresholds_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_thresholds(EXAMPLE) == Thresholds()


def test_a_thresholds_file_overrides_some_values(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        "upload_p95_ms = 40\n[thresholds]\nerror_rate_max_percent = 0.5\n"
        "[expected_flags]\nCERT_S3_DUAL_WRITE = true\n",
        encoding="utf-8",
    )
    loaded = load_thresholds(path)
    assert loaded.upload_p95_ms == 40.0 and loaded.error_rate_max_percent == 0.5
    assert loaded.upload_p99_ms == 120.0
    assert loaded.expected_flags == {
        "dual_write": True,
        "read_primary": False,
        "backfill_enabled": False,
        "s3_only": False,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upload_p95 = 40\n", "unknown threshold 'upload_p95'"),
        ("upload_p95_ms = 'fast'\n", "must be a finite number"),
        ("upload_p95_ms = -1\n", "must be a finite number"),
        ("[expected_flags]\nCERT_S3_TURBO = true\n", "CERT_S3_TURBO"),
        ("[expected_flags]\ndual_write = 'no'\n", "dual_write"),
        ("upload_p95_ms = \n", "not valid TOML"),
        ("upload_p95_ms = nan\n", "must be a finite number"),
        ("upload_p99_ms = inf\n", "must be a finite number"),
        ("hash_success_min_percent = 200\n", "a percentage: at most 100"),
        ("upload_p95_ms = 100\nupload_p99_ms = 50\n", "is above upload_p99_ms"),
        ("thresholds = 5\n", "'thresholds' must be a table"),
        ("thresholds = 'ab'\n", "'thresholds' must be a table"),
        # limits no run can meet: a strict 'below 0 %' and a zero-millisecond latency
        ("error_rate_max_percent = 0\n", "could never pass .*Error rate < 0 %"),
        ("fallback_rate_max_percent = 0\n", "could never pass"),
        ("url_p95_ms = 0\n", "could never pass"),
    ],
)
def test_bad_thresholds_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ThresholdsError, match=message):
        load_thresholds(path)


def test_a_missing_thresholds_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="cannot be read"):
        load_thresholds(tmp_path / "nope.toml")


def test_flags_measure_names_each_wrong_flag() -> None:
    expected = dict.fromkeys(("dual_write", "read_primary", "backfill_enabled", "s3_only"), False)
    good = flags_measure(expected, expected, source="env")
    assert good.value is True
    bad = flags_measure({**expected, "read_primary": True}, expected, source="env")
    assert bad.value is False
    assert "read_primary is true, expected false" in bad.note
