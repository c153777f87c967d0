"""The web service's behaviour per phase, through Starlette's test client (ASGI, no socket).

The S3 side is the real moto server over HTTP; only the HTTP hop to the service is in-process.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from certstore.backends import LocalBackend, S3Backend, build_client
from certstore.config import Flags, Settings
from certstore.metrics import Metrics, RecordingEmitter
from certstore.storage import CertificateStorage
from certstore.web import FALLBACK_HEADER, SOURCE_HEADER, create_app
from pytest_certstore.moto_server import free_port
from tests.certstore.web_client import AsgiClient

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PDF = b"%PDF-1.7 certificate body\n" * 40


def client_for(storage: CertificateStorage, **kwargs: Any) -> AsgiClient:
    app = create_app(storage, Settings.from_env({}), api_token=TOKEN, **kwargs)
    return AsgiClient(app)


def dead_s3_client() -> Any:
    """A boto3 client whose endpoint refuses connections (one attempt, short timeouts)."""
    settings = Settings.from_env(
        {},
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        max_attempts=1,
        connect_timeout=0.5,
        read_timeout=1.0,
        access_key_id="x",
        secret_access_key="y",
    )
    return build_client(settings)


def test_phase0_streams_local_and_never_touches_s3(
    make_storage: Any, recorder: RecordingEmitter
) -> None:
    storage = make_storage()
    with client_for(storage) as client:
        put = client.put("/certificates/t1/cert.pdf", content=PDF, headers=AUTH)
        assert put.status_code == 201, put.text
        assert put.json()["key"] == "t1/cert.pdf"
        assert put.json()["size"] == len(PDF)
        got = client.get("/certificates/t1/cert.pdf")
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers[SOURCE_HEADER] == "local"
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-length"] == str(len(PDF))
    assert FALLBACK_HEADER not in got.headers
    assert not [e for e in recorder.events if e.name.startswith("cert.s3.")]


def test_read_primary_redirects_to_a_presigned_url_that_serves_the_bytes(
    make_storage: Any, recorder: RecordingEmitter, moto_endpoint: str
) -> None:
    storage = make_storage(dual_write=True, read_primary=True)
    with client_for(storage) as client:
        assert client.put("/certificates/t1/a.pdf", content=PDF, headers=AUTH).status_code == 201
        recorder.clear()
        got = client.get("/certificates/t1/a.pdf")
    assert got.status_code == 302
    location = got.headers["location"]
    assert location.startswith(moto_endpoint)
    assert "X-Amz-Signature=" in location
    assert got.headers["cache-control"] == "no-store"
    assert got.headers[SOURCE_HEADER] == "s3"
    assert httpx.get(location, timeout=10).content == PDF
    assert recorder.count("cert.s3.read") == 1
    assert recorder.count("cert.s3.url") == 1
    assert recorder.count("cert.s3.read.fallback") == 0


def test_read_primary_falls_back_to_local_when_s3_lacks_the_object(
    make_storage: Any, recorder: RecordingEmitter
) -> None:
    make_storage().save("old/only-local.pdf", PDF)
    storage = make_storage(dual_write=True, read_primary=True)
    with client_for(storage) as client:
        got = client.get("/certificates/old/only-local.pdf")
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers[FALLBACK_HEADER] == "missing"
    assert recorder.count("cert.s3.read.fallback", reason="missing") == 1
    assert recorder.count("cert.s3.url") == 0


def test_read_primary_falls_back_to_local_when_s3_is_down(
    media_root: Path, recorder: RecordingEmitter
) -> None:
    metrics = Metrics([recorder])
    local = LocalBackend(media_root)
    local.save("a.pdf", PDF)
    s3 = S3Backend(dead_s3_client(), "nobucket", metrics=metrics)
    storage = CertificateStorage(
        local, s3, flags=Flags(dual_write=True, read_primary=True), metrics=metrics
    )
    with client_for(storage) as client:
        got = client.get("/certificates/a.pdf")
        assert client.get("/urls/a.pdf").json()["source"] == "local"
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers[FALLBACK_HEADER] == "error"
    assert recorder.count("cert.s3.read.fallback", reason="error") == 2


def test_s3_only_missing_is_404_and_s3_down_is_503(
    make_storage: Any, media_root: Path, recorder: RecordingEmitter
) -> None:
    (media_root / "local.pdf").write_bytes(PDF)  # local copies are ignored in phase 3
    with client_for(make_storage(s3_only=True)) as client:
        assert client.get("/certificates/local.pdf").status_code == 404
    metrics = Metrics([recorder])
    down = CertificateStorage(
        LocalBackend(media_root),
        S3Backend(dead_s3_client(), "nobucket", metrics=metrics),
        flags=Flags(s3_only=True),
        metrics=metrics,
    )
    with client_for(down) as client:
        got = client.get("/certificates/local.pdf")
        put = client.put("/certificates/new.pdf", content=PDF, headers=AUTH)
    assert got.status_code == 503
    assert got.json()["error"] == "storage_unavailable"
    assert put.status_code == 503
    assert recorder.count("cert.s3.save.fail") == 1


def test_s3_only_redirects_objects_saved_in_phase3(make_storage: Any) -> None:
    storage = make_storage(s3_only=True)
    with client_for(storage) as client:
        assert client.put("/certificates/p3.pdf", content=PDF, headers=AUTH).status_code == 201
        got = client.get("/certificates/p3.pdf")
    assert got.status_code == 302
    assert httpx.get(got.headers["location"], timeout=10).content == PDF


@pytest.mark.parametrize("flags", [{}, {"dual_write": True, "read_primary": True}])
def test_missing_everywhere_is_404_json(make_storage: Any, flags: dict[str, bool]) -> None:
    with client_for(make_storage(**flags)) as client:
        got = client.get("/certificates/nobody/has-this.pdf")
        head = client.head("/certificates/nobody/has-this.pdf")
        url = client.get("/urls/nobody/has-this.pdf")
    assert got.status_code == 404
    assert got.json()["error"] == "not_found"
    assert head.status_code == 404
    assert url.status_code == 404


def test_head_answers_like_get_without_a_body(make_storage: Any) -> None:
    storage = make_storage()
    storage.save("h.pdf", PDF)
    with client_for(storage) as client:
        head = client.head("/certificates/h.pdf")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(PDF))
    assert head.content == b""


def test_urls_endpoint_reports_source(make_storage: Any, moto_endpoint: str) -> None:
    storage = make_storage(dual_write=True, read_primary=True)
    with client_for(storage) as client:
        client.put("/certificates/u/é 1.pdf", content=PDF, headers=AUTH)
        body = client.get("/urls/u/é 1.pdf").json()
    assert body["source"] == "s3"
    assert body["key"] == "u/é 1.pdf"
    assert body["url"].startswith(moto_endpoint)
    assert httpx.get(body["url"], timeout=10).content == PDF
    with client_for(make_storage()) as client:
        local = client.get("/urls/u/é 1.pdf").json()
    assert local == {"key": "u/é 1.pdf", "url": "/certificates/u/%C3%A9%201.pdf", "source": "local"}


def test_upload_content_type_comes_from_the_key_unless_given(
    make_storage: Any, http_client: Any, http_bucket: str
) -> None:
    storage = make_storage(dual_write=True)
    with client_for(storage) as client:
        client.put(
            "/certificates/form.pdf",
            content=PDF,
            headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        )
        client.put(
            "/certificates/typed.bin",
            content=PDF,
            headers={**AUTH, "Content-Type": "application/octet-stream"},
        )
    form = http_client.head_object(Bucket=http_bucket, Key="certificates/form.pdf")
    typed = http_client.head_object(Bucket=http_bucket, Key="certificates/typed.bin")
    assert form["ContentType"] == "application/pdf"
    assert form["ContentLength"] == len(PDF)
    assert typed["ContentType"] == "application/octet-stream"


def test_healthz_phase0_checks_only_the_local_root(make_storage: Any, media_root: Path) -> None:
    with client_for(make_storage()) as client:
        ok = client.get("/healthz")
        media_root.rmdir()
        gone = client.get("/healthz")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "phase": "0 local", "checks": {"local": {"ok": True}}}
    assert gone.status_code == 503
    assert gone.json()["checks"]["local"]["ok"] is False


def test_healthz_checks_s3_when_in_play(
    make_storage: Any, media_root: Path, http_bucket: str
) -> None:
    with client_for(make_storage(dual_write=True)) as client:
        ok = client.get("/healthz")
    assert ok.status_code == 200
    assert ok.json()["checks"]["s3"] == {"ok": True, "bucket": http_bucket}
    down = CertificateStorage(
        LocalBackend(media_root), S3Backend(dead_s3_client(), "b"), flags=Flags(dual_write=True)
    )
    with client_for(down) as client:
        degraded = client.get("/healthz")
    # Local is authoritative in phases 1 and 2: S3 down is degraded, still serving (200).
    assert degraded.status_code == 200 and degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"]["s3"]["ok"] is False
    assert degraded.json()["checks"]["local"]["ok"] is True
    needed = CertificateStorage(
        LocalBackend(media_root), S3Backend(dead_s3_client(), "b"), flags=Flags(s3_only=True)
    )
    with client_for(needed) as client:
        bad = client.get("/healthz")
    assert bad.status_code == 503 and bad.json()["status"] == "fail"
    assert set(bad.json()["checks"]) == {"s3"}


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_healthz_gives_up_on_a_hung_s3_after_its_deadline(
    media_root: Path, hung_endpoint: str
) -> None:
    settings = Settings.from_env(
        {},
        endpoint_url=hung_endpoint,
        max_attempts=1,
        connect_timeout=1.0,
        read_timeout=3.0,
        access_key_id="x",
        secret_access_key="y",
    )
    storage = CertificateStorage(
        LocalBackend(media_root),
        S3Backend(build_client(settings), "b"),
        flags=Flags(read_primary=True, dual_write=True),
    )
    with client_for(storage, health_timeout=0.2) as client:
        bad = client.get("/healthz")
    assert bad.status_code == 200 and bad.json()["status"] == "degraded"
    assert "did not answer within 0.2 s" in bad.json()["checks"]["s3"]["detail"]


def test_metrics_exposes_the_catalog_fed_by_the_router(make_storage: Any) -> None:
    storage = make_storage(dual_write=True, read_primary=True)
    with client_for(storage) as client:
        client.put("/certificates/m.pdf", content=PDF, headers=AUTH)
        client.get("/certificates/m.pdf")
        client.get("/certificates/missing.pdf")
        text = client.get("/metrics").text
    assert "cert_s3_read_total 2.0" in text
    assert 'cert_s3_read_fallback_total{reason="missing"} 1.0' in text
    assert "cert_s3_save_total 1.0" in text
    assert "cert_s3_url_total 1.0" in text


def test_create_app_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CERTSTORE_MEDIA_ROOT", str(tmp_path))
    monkeypatch.setenv("CERTSTORE_API_TOKEN", TOKEN)
    with AsgiClient(create_app()) as client:
        put = client.put("/certificates/env.pdf", content=PDF, headers=AUTH)
        assert client.get("/certificates/env.pdf").content == PDF
    assert put.status_code == 201
    assert (tmp_path / "env.pdf").read_bytes() == PDF


def test_bad_upload_limit_is_refused(make_storage: Any) -> None:
    with pytest.raises(ValueError, match="max_upload_bytes"):
        client_for(make_storage(), max_upload_bytes=0)


def test_healthz_is_degraded_while_the_flags_file_is_invalid(
    media_root: Path, tmp_path: Path
) -> None:
    import os
    import time

    from certstore.config import FlagSource

    flags_file = tmp_path / "flags.toml"
    flags_file.write_text("CERT_S3_DUAL_WRITE = false\n")
    storage = CertificateStorage(
        LocalBackend(media_root),
        None,
        flags=FlagSource({"CERTSTORE_FLAGS_FILE": str(flags_file)}),
    )
    storage.save("a.pdf", b"%PDF-1.4 a")
    with client_for(storage) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        flags_file.write_text("CERT_S3_DUAL_WRITE = true\nCERT_S3_DUAL_WRITE = false\n")
        os.utime(flags_file, (time.time() + 5, time.time() + 5))
        degraded = client.get("/healthz")
        served = client.get("/certificates/a.pdf")
    # still serving on the last good flags (phase 0), and saying why
    assert degraded.status_code == 200 and degraded.json()["status"] == "degraded"
    assert degraded.json()["phase"] == "0 local"
    detail = degraded.json()["checks"]["flags"]["detail"]
    assert "keeping the last good flags" in detail and "flags.toml" in detail
    assert served.status_code == 200 and served.content == b"%PDF-1.4 a"
