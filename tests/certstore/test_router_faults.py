"""S3 faults injected at botocore's ``before-send``: botocore's real retry handler runs, and the
router shows the documented outcome, the attempt count and the metric for each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from certstore.backends import LocalBackend, S3Backend, build_client
from certstore.config import Flags, Settings
from certstore.errors import EndpointUnreachableError, S3Error
from certstore.metrics import Metrics, RecordingEmitter
from certstore.storage import CertificateStorage
from pytest_certstore.moto_server import free_port

PDF = b"%PDF-1.4 fault test\n%%EOF\n"


def _make(
    client: Any, bucket: str, media_root: Path, recorder: RecordingEmitter, **flags: bool
) -> CertificateStorage:
    metrics = Metrics([recorder])
    s3 = S3Backend(client, bucket, prefix="certificates/", metrics=metrics)
    return CertificateStorage(LocalBackend(media_root), s3, flags=Flags(**flags), metrics=metrics)


@pytest.fixture
def faults(http_client: Any, backoff_sleeps: list[float]) -> Iterator[Any]:
    import importlib.util
    import sys

    conftest = sys.modules.get("tests.certstore.conftest")
    if conftest is None:
        spec = importlib.util.spec_from_file_location(
            "_core_conftest", Path(__file__).with_name("conftest.py")
        )
        assert spec and spec.loader
        conftest = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(conftest)
    engine = conftest.BotocoreFaults()
    engine.attach(http_client)
    yield engine
    engine.detach(http_client)


@pytest.fixture
def storage_for(http_client: Any, http_bucket: str, media_root: Path, recorder: RecordingEmitter):
    def make(**flags: bool) -> CertificateStorage:
        return _make(http_client, http_bucket, media_root, recorder, **flags)

    return make


def _s3_has(client: Any, bucket: str, key: str, faults: Any) -> bool:
    faults.paused = True
    try:
        found = client.list_objects_v2(Bucket=bucket, Prefix=f"certificates/{key}")
    finally:
        faults.paused = False
    return found.get("KeyCount", 0) > 0


@pytest.mark.parametrize(
    ("status", "code"), [(503, "ServiceUnavailable"), (500, "InternalError"), (503, "SlowDown")]
)
def test_transient_errors_are_retried_by_botocore_and_succeed(
    storage_for: Any,
    faults: Any,
    recorder: RecordingEmitter,
    http_client: Any,
    http_bucket: str,
    backoff_sleeps: list[float],
    status: int,
    code: str,
) -> None:
    faults.add("PutObject", status=status, code=code, times=2)
    storage_for(dual_write=True).save("a.pdf", PDF)
    assert faults.count("PutObject") == 3
    assert len(backoff_sleeps) == 2
    assert recorder.count("cert.s3.retry", op="PutObject") == 2
    assert recorder.count("cert.s3.save.fail") == 0
    assert _s3_has(http_client, http_bucket, "a.pdf", faults)


@pytest.mark.parametrize(
    ("status", "code"), [(503, "ServiceUnavailable"), (500, "InternalError"), (503, "SlowDown")]
)
def test_persistent_errors_in_dual_write_are_counted_never_raised(
    storage_for: Any,
    faults: Any,
    recorder: RecordingEmitter,
    media_root: Path,
    status: int,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults.add("PutObject", status=status, code=code)
    storage_for(dual_write=True).save("a.pdf", PDF)
    assert (media_root / "a.pdf").read_bytes() == PDF
    assert faults.count("PutObject") == 3
    assert recorder.count("cert.s3.save.fail", error=code) == 1
    assert recorder.count("cert.s3.retry", op="PutObject") == 2
    event = recorder.matching("cert.s3.save.fail")[0]
    assert event.context["key"] == "a.pdf"
    assert "after 3 attempt(s)" in str(event.context["detail"])


def test_persistent_errors_in_s3_only_raise(
    storage_for: Any, faults: Any, recorder: RecordingEmitter, media_root: Path
) -> None:
    faults.add("PutObject", status=503, code="SlowDown")
    with pytest.raises(S3Error) as info:
        storage_for(s3_only=True).save("a.pdf", PDF)
    assert info.value.code == "SlowDown"
    assert info.value.attempts == 3
    assert info.value.status == 503
    assert not (media_root / "a.pdf").exists()
    assert recorder.count("cert.s3.save.fail", error="SlowDown") == 1


def test_no_such_key_on_read_falls_back_as_missing(
    storage_for: Any, faults: Any, recorder: RecordingEmitter
) -> None:
    storage = storage_for(dual_write=True, read_primary=True)
    storage.save("a.pdf", PDF)
    faults.add("GetObject", status=404, code="NoSuchKey")
    assert storage.read("a.pdf") == PDF
    assert faults.count("GetObject") == 1
    assert recorder.count("cert.s3.read.fallback", reason="missing") == 1


def test_read_timeout_is_retried_then_falls_back_as_error(
    storage_for: Any,
    faults: Any,
    recorder: RecordingEmitter,
) -> None:
    storage = storage_for(dual_write=True, read_primary=True)
    storage.save("a.pdf", PDF)
    faults.add("GetObject", exception=ReadTimeoutError)
    assert storage.read("a.pdf") == PDF
    assert faults.count("GetObject") == 3
    assert recorder.count("cert.s3.read.fallback", reason="error") == 1
    event = recorder.matching("cert.s3.read.fallback")[0]
    assert event.context["error"] == "ReadTimeoutError"


def test_head_error_on_size_falls_back_to_local_size(
    storage_for: Any, faults: Any, recorder: RecordingEmitter
) -> None:
    storage = storage_for(dual_write=True, read_primary=True)
    storage.save("a.pdf", PDF)
    faults.add("HeadObject", status=500)
    assert storage.size("a.pdf") == len(PDF)
    assert faults.count("HeadObject") == 3
    assert recorder.count("cert.s3.read.fallback", reason="error") == 1


def test_delete_error_is_counted_and_the_local_delete_still_happens(
    storage_for: Any,
    faults: Any,
    recorder: RecordingEmitter,
    media_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = storage_for(dual_write=True)
    storage.save("a.pdf", PDF)
    faults.add("DeleteObject", status=503, code="ServiceUnavailable")
    with caplog.at_level("WARNING", logger="certstore.storage"):
        storage.delete("a.pdf")
    assert not (media_root / "a.pdf").exists()
    assert recorder.count("cert.s3.delete.fail", error="ServiceUnavailable") == 1
    # the runbook's recovery greps for this line to delete the S3 copy again
    assert "S3 delete of 'a.pdf' failed" in caplog.text and "certstore rm a.pdf" in caplog.text


def test_delete_error_in_s3_only_raises(
    storage_for: Any, faults: Any, recorder: RecordingEmitter
) -> None:
    storage = storage_for(s3_only=True)
    storage.save("a.pdf", PDF)
    faults.add("DeleteObject", status=500)
    with pytest.raises(S3Error):
        storage.delete("a.pdf")
    assert recorder.count("cert.s3.delete.fail", error="InternalError") == 1


def test_presign_failure_falls_back_to_the_local_url(
    storage_for: Any,
    recorder: RecordingEmitter,
    http_client: Any,
    http_bucket: str,
) -> None:
    from botocore.exceptions import NoCredentialsError

    def refuse(**_: Any) -> None:
        raise NoCredentialsError()

    http_client.meta.events.register_first("before-sign.s3", refuse, unique_id="refuse-sign")
    try:
        url = storage_for(dual_write=True, read_primary=True).url("a.pdf")
    finally:
        http_client.meta.events.unregister("before-sign.s3", unique_id="refuse-sign")
    assert url == "/media/a.pdf"
    assert recorder.count("cert.s3.url.fallback", reason="error") == 1


@pytest.fixture
def unreachable_client() -> Any:
    settings = Settings.from_env(
        {},
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        max_attempts=2,
        connect_timeout=1.0,
        read_timeout=1.0,
    )
    return build_client(settings)


def test_unreachable_endpoint_in_dual_write_keeps_the_local_write(
    unreachable_client: Any,
    media_root: Path,
    recorder: RecordingEmitter,
    backoff_sleeps: list[float],
) -> None:
    storage = _make(unreachable_client, "bucket", media_root, recorder, dual_write=True)
    storage.save("a.pdf", PDF)
    assert (media_root / "a.pdf").read_bytes() == PDF
    assert recorder.count("cert.s3.save.fail", error="EndpointConnectionError") == 1
    assert len(backoff_sleeps) == 1


def test_unreachable_endpoint_is_a_clear_error(
    unreachable_client: Any, backoff_sleeps: list[float]
) -> None:
    backend = S3Backend(unreachable_client, "bucket")
    with pytest.raises(EndpointUnreachableError) as info:
        backend.check_bucket()
    assert "unreachable" in str(info.value)
    assert info.value.bucket == "bucket"


def test_a_failed_shadow_overwrite_drops_the_stale_s3_copy(
    storage_for: Any, faults: Any, recorder: RecordingEmitter, media_root: Path, http_client: Any
) -> None:
    """v1 is in S3; the save of v2 reaches S3 but fails: phase 2 must serve v2 (the local,
    authoritative copy), not the v1 the failed write left behind."""
    storage = storage_for(dual_write=True, read_primary=True)
    storage.save("same.pdf", b"%PDF v1")
    faults.add("PutObject", status=503, code="SlowDown")
    storage.save("same.pdf", b"%PDF v2 longer")
    faults.faults.clear()
    assert (media_root / "same.pdf").read_bytes() == b"%PDF v2 longer"
    assert not _s3_has(http_client, storage.s3.bucket, "same.pdf", faults)
    assert storage.read("same.pdf") == b"%PDF v2 longer"
    assert storage.size("same.pdf") == len(b"%PDF v2 longer")
    assert recorder.count("cert.s3.read.fallback", reason="missing") == 2


def test_a_stale_copy_that_cannot_be_dropped_is_counted(
    storage_for: Any, faults: Any, recorder: RecordingEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    storage = storage_for(dual_write=True)
    storage.save("same.pdf", b"%PDF v1")
    faults.add("PutObject", status=503, code="SlowDown")
    faults.add("DeleteObject", status=503, code="SlowDown")
    storage.save("same.pdf", b"%PDF v2")
    assert recorder.count("cert.s3.delete.fail", error="SlowDown") == 1
    assert "may be stale" in caplog.text
