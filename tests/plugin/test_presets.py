"""Fault buckets A-H: the whole matrix is one test (``fault_bucket``)."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_certstore.errors import FaultRuleError
from pytest_certstore.presets import PRESETS, Expected, preset


def test_fault_bucket(fault_bucket, cert_metrics) -> None:  # type: ignore[no-untyped-def]
    outcome = fault_bucket.run()
    assert fault_bucket.mismatches(outcome, cert_metrics) == []
    assert outcome.result == fault_bucket.expected.result


def test_a_wrong_expectation_is_reported(fault_bucket, cert_metrics) -> None:  # type: ignore[no-untyped-def]
    """The matrix check can fail: flip every expectation and each one is listed."""
    outcome = fault_bucket.run()
    want = fault_bucket.expected
    wrong = Expected(
        result=("not", want.result),
        metrics={name: count + 1 for name, count in want.metrics.items()},
        s3_attempts=None if want.s3_attempts is None else want.s3_attempts + 1,
        local_touched=None if want.local_touched is None else not want.local_touched,
    )
    fault_bucket.preset = dataclasses.replace(fault_bucket.preset, expected=wrong)
    problems = fault_bucket.mismatches(outcome, cert_metrics)
    expected_count = (
        1 + len(want.metrics) + (want.s3_attempts is not None) + (want.local_touched is not None)
    )
    assert len(problems) == expected_count, problems


def test_presets_by_name_and_letter() -> None:
    assert [p.letter for p in PRESETS] == list("ABCDEFGH")
    assert preset("A") is preset("transient-5xx-on-save") is preset("a")
    with pytest.raises(FaultRuleError, match="A=transient-5xx-on-save"):
        preset("Z")


def test_a_preset_applies_to_any_client(s3, s3_faults) -> None:  # type: ignore[no-untyped-def]
    rules = s3_faults.apply_preset("A")
    response = s3.put("x.pdf", b"x")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert [s3_faults.fired(rule) for rule in rules] == [2]
