from __future__ import annotations

import logging

import pytest

from certstore import metrics
from certstore.metrics import CATALOG, Metrics, PrometheusEmitter, RecordingEmitter


def test_prometheus_names_follow_the_rule() -> None:
    names = {m.name: m.prometheus_name for m in CATALOG}
    assert names["cert.s3.save.fail"] == "cert_s3_save_fail_total"
    assert names["cert.s3.read.fallback"] == "cert_s3_read_fallback_total"
    assert names["cert.s3.save.seconds"] == "cert_s3_save_seconds"
    assert names["cert.local.free_ratio"] == "cert_local_free_ratio"
    assert names["cert.backfill.objects"] == "cert_backfill_objects_total"
    assert not any("write" in name for name in names)


def test_catalog_names_are_unique() -> None:
    assert len({m.name for m in CATALOG}) == len(CATALOG)
    assert len({m.prometheus_name for m in CATALOG}) == len(CATALOG)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(metrics.UnknownMetricError) as info:
        Metrics().inc("cert.s3.write.fail")
    assert "cert.s3.save.fail" in str(info.value)


def test_wrong_labels_and_wrong_kind_are_errors() -> None:
    with pytest.raises(metrics.UnknownMetricError):
        Metrics().inc("cert.s3.read.fallback")
    with pytest.raises(metrics.UnknownMetricError):
        Metrics().inc("cert.s3.save", labels={"error": "x"})
    with pytest.raises(metrics.UnknownMetricError):
        Metrics().observe("cert.s3.save", 1.0)


def test_prometheus_exposition_uses_catalog_names() -> None:
    emitter = PrometheusEmitter()
    Metrics([emitter]).inc("cert.s3.read.fallback", labels={"reason": "missing"})
    Metrics([emitter]).observe("cert.s3.save.seconds", 0.02)
    text = emitter.exposition().decode()
    assert 'cert_s3_read_fallback_total{reason="missing"} 1.0' in text
    assert "cert_s3_save_seconds_bucket" in text
    for metric in CATALOG:
        assert metric.prometheus_name in text


def test_log_lines_are_structured_and_failures_are_loud(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="certstore.metric")
    Metrics([metrics.LogEmitter()]).inc(
        "cert.s3.save.fail", labels={"error": "SlowDown"}, key="a b.pdf"
    )
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "METRIC: cert.s3.save.fail error=SlowDown key='a b.pdf'"


def test_capture_sees_every_metrics_instance() -> None:
    with metrics.capture() as recorded:
        Metrics().inc("cert.s3.save")
        Metrics([RecordingEmitter()]).inc("cert.s3.save", 2)
    assert recorded.count("cert.s3.save") == 3
    Metrics().inc("cert.s3.save")
    assert recorded.count("cert.s3.save") == 3


def test_a_broken_emitter_never_breaks_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def emit(self, event: metrics.MetricEvent) -> None:
            raise RuntimeError("exporter down")

    recorder = RecordingEmitter()
    Metrics([Broken(), recorder]).inc("cert.s3.save")
    assert recorder.count("cert.s3.save") == 1
    assert "exporter down" in caplog.text
