"""Examples from docs/pytest-plugin.md: fault rules, both levels, presets."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from pytest_certstore import FaultRule, error, latency


def test_transient_503_is_retried(s3, s3_faults):
    s3_faults.inject("SlowDown", "PutObject", times=2)
    response = s3.client.put_object(Bucket=s3.bucket, Key="k.pdf", Body=b"x")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert s3_faults.attempts("PutObject") == 3


def test_rule_objects_and_globs(s3_server, s3_faults):
    s3_faults.add(
        FaultRule(
            error("InternalError"), ("GetObject", "HeadObject"), key="broken/*", name="disk gone"
        )
    )
    s3_faults.add(FaultRule(latency(20), "*", probability=0.5))  # seeded: same run, same draws
    s3_server.put("broken/a.pdf", b"x")
    with pytest.raises(ClientError, match="InternalError"):
        s3_server.get("broken/a.pdf")


def test_router_under_faults(cert_storage, s3_faults, cert_metrics):
    storage = cert_storage(dual_write=True)
    s3_faults.inject("refused", "*")  # S3 is down
    storage.save("k.pdf", b"%PDF")  # the local write still succeeds
    cert_metrics.assert_emitted("cert.s3.save.fail", 1, error="EndpointConnectionError")


def test_fault_proxy_for_other_clients(s3_fault_proxy):
    s3_fault_proxy.inject("SlowDown", "PutObject", times=1)
    # Any HTTP client (a subprocess via s3_fault_proxy.env(), s5cmd, ...) would use this URL:
    assert s3_fault_proxy.url.startswith("http://127.0.0.1:")
    response = s3_fault_proxy.client.put_object(Bucket=s3_fault_proxy.bucket, Key="k", Body=b"x")
    assert response["ResponseMetadata"]["RetryAttempts"] == 1


def test_a_preset_by_letter(s3, s3_faults):
    s3_faults.apply_preset("A")  # transient-5xx-on-save
    assert s3.put("k.pdf", b"x")["ResponseMetadata"]["RetryAttempts"] == 2


def test_every_fault_bucket(fault_bucket, cert_metrics):
    outcome = fault_bucket.run()
    assert fault_bucket.mismatches(outcome, cert_metrics) == []
