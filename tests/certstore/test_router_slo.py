"""The router's own latency SLOs, judged on the moto server over HTTP (never on a fake).

The release gate reads these verdicts from the plugin's ``--slo-report`` (see slo.toml's
``router-save`` and ``router-url`` objectives). Targets are the background package's: save p95
75 ms / p99 120 ms, URL p95 50 ms. Marked ``latency``: ci/release-gate.sh runs them in a step
of their own, one process without xdist or coverage, so a neighbour worker's burst or the
tracer is not what they measure (``pytest -n 2`` still runs them with everything else).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

PAYLOAD = b"%PDF-1.4\n" + os.urandom(50 * 1024)
SAMPLES = 120

pytestmark = pytest.mark.latency


@pytest.mark.slo(p95_ms=75, p99_ms=120, error_rate=0.0, min_samples=SAMPLES, name="router-save")
def test_dual_write_save_latency_on_the_http_endpoint(
    cert_storage: Any, s3_server: Any, slo_sampler: Any
) -> None:
    storage = cert_storage(dual_write=True, read_primary=True, s3="s3_server")
    for number in range(SAMPLES):
        with slo_sampler.measure():
            storage.save(f"slo/{number}.pdf", PAYLOAD)


@pytest.mark.slo(p95_ms=50, error_rate=0.0, min_samples=SAMPLES, name="router-url")
def test_read_primary_url_latency(cert_storage: Any, s3_server: Any, slo_sampler: Any) -> None:
    storage = cert_storage(dual_write=True, read_primary=True, s3="s3_server")
    storage.save("slo/url.pdf", PAYLOAD)
    for _ in range(SAMPLES):
        with slo_sampler.measure():
            url = storage.url("slo/url.pdf")
        assert "X-Amz-Signature=" in url
