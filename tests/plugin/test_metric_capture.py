"""``cert_metrics``: counts, labels, observations, and names checked against the catalog."""

from __future__ import annotations

import pytest

from certstore.metrics import Metrics, default_metrics
from pytest_certstore import MetricCapture, MetricNameError

pytest_plugins = ["pytester"]

# pytester restores sys.modules after each in-process run, so whatever a run imports first is
# re-imported -- and assertion-rewritten, ~3 s -- by the next run. Hypothesis' pytest plugin
# imports this in every run's terminal summary: import it once, here.
import hypothesis.internal.observability  # noqa: E402, F401


def test_counts_labels_and_observations(cert_metrics: MetricCapture) -> None:
    metrics = Metrics([])
    metrics.inc("cert.s3.save")
    metrics.inc("cert.s3.save.fail", labels={"error": "SlowDown"})
    metrics.inc("cert.s3.save.fail", labels={"error": "InternalError"})
    metrics.observe("cert.s3.save.seconds", 0.25)
    default_metrics().inc("cert.s3.read")  # any Metrics object in the process is seen
    assert cert_metrics.count("cert.s3.save") == 1
    assert cert_metrics.count("cert.s3.save.fail") == 2
    assert cert_metrics.count("cert.s3.save.fail", error="SlowDown") == 1
    assert cert_metrics.label_values("cert.s3.save.fail", "error") == ["InternalError", "SlowDown"]
    assert cert_metrics.observations("cert.s3.save.seconds") == [0.25]
    assert cert_metrics.count("cert.s3.read") == 1
    cert_metrics.assert_emitted("cert.s3.save.fail", 1, error="InternalError")
    cert_metrics.assert_not_emitted("cert.s3.delete")
    assert cert_metrics.emitted_names() == [
        "cert.s3.read",
        "cert.s3.save",
        "cert.s3.save.fail",
        "cert.s3.save.seconds",
    ]


def test_assertions_fail_when_they_should(cert_metrics: MetricCapture) -> None:
    Metrics([]).inc("cert.s3.url.fallback", labels={"reason": "error"})
    with pytest.raises(AssertionError, match="was not emitted"):
        cert_metrics.assert_emitted("cert.s3.url")
    with pytest.raises(AssertionError, match="counted 1, expected 2"):
        cert_metrics.assert_emitted("cert.s3.url.fallback", 2)
    with pytest.raises(AssertionError, match="expected none"):
        cert_metrics.assert_not_emitted("cert.s3.url.fallback", reason="error")


def test_a_drifted_name_fails_listing_the_valid_ones(cert_metrics: MetricCapture) -> None:
    with pytest.raises(MetricNameError) as caught:
        cert_metrics.count("cert.s3.write.fail")
    assert "cert.s3.save.fail" in str(caught.value)
    assert "valid names" in str(caught.value)
    with pytest.raises(MetricNameError, match="its labels: error"):
        cert_metrics.count("cert.s3.save.fail", reason="x")


def test_capture_ends_with_the_test() -> None:
    capture = MetricCapture().start()
    capture.stop()
    Metrics([]).inc("cert.s3.save")
    assert capture.count("cert.s3.save") == 0


def test_router_metrics_under_a_real_fault(cert_storage, s3_faults, cert_metrics) -> None:  # type: ignore[no-untyped-def]
    storage = cert_storage(dual_write=True)
    s3_faults.inject("InternalError", "PutObject")
    storage.save("k.pdf", b"data")
    cert_metrics.assert_emitted("cert.s3.save", 1)
    cert_metrics.assert_emitted("cert.s3.save.fail", 1, error="InternalError")
    cert_metrics.assert_emitted("cert.s3.retry", 2, op="PutObject")
    assert len(cert_metrics.observations("cert.s3.save.seconds")) == 1


def test_a_drifted_name_fails_the_test_in_a_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_drift(cert_metrics):
            assert cert_metrics.count("cert.s3.write.fail") == 0
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*MetricNameError*cert.s3.write.fail*not in*catalog*valid names*"])
