"""Examples from docs/pytest-plugin.md: ``cert_metrics`` and ``@pytest.mark.slo``."""

from __future__ import annotations

import pytest


def test_metric_capture(cert_storage, s3_faults, cert_metrics):
    storage = cert_storage(dual_write=True, read_primary=True)
    storage.save("k.pdf", b"%PDF")
    s3_faults.inject("NoSuchKey", "GetObject")
    assert storage.read("k.pdf") == b"%PDF"
    assert cert_metrics.count("cert.s3.read.fallback", reason="missing") == 1
    cert_metrics.assert_emitted("cert.s3.read", 1)
    assert len(cert_metrics.observations("cert.s3.read.seconds")) == 1


@pytest.mark.slo(p95_ms=2000, error_rate=0.0, min_samples=20, name="head-over-http")
def test_slo_on_the_http_endpoint(s3_server, slo_sampler):
    for _ in range(20):
        with slo_sampler.measure():
            s3_server.client.head_bucket(Bucket=s3_server.bucket)


@pytest.mark.slo(p50_ms=10, p99_ms=50, min_samples=5)
def test_slo_from_recorded_samples(slo_sampler):
    for ms in (3.0, 4.5, 5.0, 7.5, 12.0):  # e.g. parsed from a log or another tool
        slo_sampler.record(ms, ok=True)


@pytest.mark.slo(p99_ms=500, min_samples=10)
def test_slo_from_pytest_benchmark(benchmark):
    benchmark.pedantic(sorted, args=(list(range(1000)),), rounds=10, iterations=1)
