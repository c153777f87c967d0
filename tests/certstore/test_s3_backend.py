from __future__ import annotations

import hashlib
import io
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from certstore.backends import S3Backend, build_client, client_config, shared_client
from certstore.config import Settings
from certstore.errors import BucketNotFoundError, InvalidKeyError, S3ObjectNotFoundError


@pytest.fixture
def backend(http_client: Any, http_bucket: str) -> S3Backend:
    return S3Backend(http_client, http_bucket, prefix="certificates")


def test_save_stores_sha256_metadata_and_checksum(backend: S3Backend, http_client: Any) -> None:
    import base64

    payload = b"%PDF-1.4 metadata"
    sent: list[dict[str, Any]] = []
    http_client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(dict(request.headers)),
        unique_id="capture-put",
    )
    try:
        saved = backend.save("Δ/東京.pdf", payload)
    finally:
        http_client.meta.events.unregister("before-send.s3.PutObject", unique_id="capture-put")
    checksum = base64.b64encode(hashlib.sha256(payload).digest())
    assert sent[0]["x-amz-checksum-sha256"] in (checksum, checksum.decode())
    digest = hashlib.sha256(payload).hexdigest()
    assert saved.sha256 == digest
    assert saved.etag == hashlib.md5(payload).hexdigest()
    head = http_client.head_object(Bucket=backend.bucket, Key="certificates/Δ/東京.pdf")
    assert head["Metadata"]["sha256"] == digest
    info = backend.info("Δ/東京.pdf")
    assert (info.size, info.sha256, info.content_type) == (len(payload), digest, "application/pdf")


def test_stream_and_unseekable_stream_bodies(backend: S3Backend) -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._data.readinto(buffer)

    backend.save("seekable.pdf", io.BytesIO(b"seekable"))
    backend.save("unseekable.pdf", Unseekable(b"unseekable"))  # type: ignore[arg-type]
    with backend.open("seekable.pdf") as handle:
        assert handle.read() == b"seekable"
    with backend.open("unseekable.pdf") as handle:
        assert handle.read() == b"unseekable"
    assert backend.info("unseekable.pdf").sha256 == hashlib.sha256(b"unseekable").hexdigest()


def test_missing_objects(backend: S3Backend) -> None:
    assert backend.exists("nope.pdf") is False
    with pytest.raises(S3ObjectNotFoundError):
        backend.open("nope.pdf")
    with pytest.raises(S3ObjectNotFoundError):
        backend.info("nope.pdf")
    backend.delete("nope.pdf")


def test_missing_bucket_is_a_clear_error(http_client: Any) -> None:
    backend = S3Backend(http_client, "no-such-bucket-here")
    with pytest.raises(BucketNotFoundError) as info:
        backend.check_bucket()
    assert "no-such-bucket-here" in str(info.value)
    with pytest.raises(BucketNotFoundError) as saving:
        backend.save("a.pdf", b"x")
    # the message names the object as it is in the bucket (prefix included); the error's key
    # stays the certificate key
    assert f"s3://no-such-bucket-here/{backend.prefix}a.pdf" in str(saving.value)
    assert saving.value.key == "a.pdf"
    # HeadObject's 404 has no body, so a missing bucket looks like a missing key: the backend
    # checks the bucket before saying "no such object".
    for call in (backend.exists, backend.info):
        with pytest.raises(BucketNotFoundError):
            call("a.pdf")


def test_a_key_s3_cannot_hold_reads_as_missing_and_is_refused_for_writes(
    http_client: Any, http_bucket: str
) -> None:
    backend = S3Backend(http_client, http_bucket, prefix="certificates/")
    key = "/".join(["d" * 200] * 5) + "/" + "y" * 14  # 1,019 bytes; 1,032 with the prefix
    assert backend.exists(key) is False
    for call in (backend.open, backend.info, backend.url):
        with pytest.raises(S3ObjectNotFoundError, match="no S3 object can exist"):
            call(key)
    backend.delete(key)
    with pytest.raises(InvalidKeyError, match="with the prefix"):
        backend.save(key, b"x")


def test_bad_keys_never_reach_s3(backend: S3Backend) -> None:
    for key in ("../a.pdf", "/a.pdf", "a\x00.pdf", "x" * 1020):
        with pytest.raises(InvalidKeyError):
            backend.save(key, b"x")
    assert list(backend.iter_objects()) == []


def test_listing_is_paginated_and_relative_to_the_prefix(
    backend: S3Backend, http_client: Any
) -> None:
    for number in range(7):
        backend.save(f"folder/{number}.pdf", b"x" * number)
    http_client.put_object(Bucket=backend.bucket, Key="elsewhere.pdf", Body=b"x")
    listed = list(backend.iter_objects(page_size=3))
    assert [item.key for item in listed] == [f"folder/{n}.pdf" for n in range(7)]
    assert [item.size for item in listed] == list(range(7))


def test_presigned_urls_use_sigv4_and_the_expiry(http_client: Any, http_bucket: str) -> None:
    backend = S3Backend(http_client, http_bucket, url_expiry=120)
    query = parse_qs(urlparse(backend.url("a.pdf")).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["120"]
    assert parse_qs(urlparse(backend.url("a.pdf", expires=5)).query)["X-Amz-Expires"] == ["5"]


def test_default_aws_client_presigns_with_sigv4_in_us_east_1() -> None:
    client = build_client(Settings.from_env({}, region="us-east-1"))
    backend = S3Backend(client, "certs")
    assert "X-Amz-Signature=" in backend.url("a.pdf")
    assert "Signature=" in backend.url("a.pdf") and "AWSAccessKeyId=" not in backend.url("a.pdf")


def test_when_required_mode_sends_no_checksum(http_settings: Settings, http_bucket: str) -> None:
    settings = Settings.from_env(
        {},
        endpoint_url=http_settings.endpoint_url,
        checksum_mode="when_required",
        bucket=http_bucket,
    )
    client = build_client(settings)
    sent: list[dict[str, str]] = []
    client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    S3Backend.from_settings(settings, client=client).save("a.pdf", b"x")
    names = {name.lower() for name in sent[0]}
    assert not any(name.startswith("x-amz-checksum") for name in names)
    assert client_config(settings).request_checksum_calculation == "when_required"


def test_retry_setting_is_total_attempts() -> None:
    config = client_config(Settings.from_env({"AWS_S3_MAX_ATTEMPTS": "5"}))
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}


def test_clients_are_shared_per_configuration(http_settings: Settings) -> None:
    assert shared_client(http_settings) is shared_client(http_settings)
    other = Settings.from_env({}, endpoint_url=http_settings.endpoint_url, max_attempts=2)
    assert shared_client(other) is not shared_client(http_settings)
