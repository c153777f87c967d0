"""One set of S3-semantics tests, run against every S3 fixture the plugin offers.

Backends are the plugin's own fixtures, so this checks what test authors get: ``s3`` (the
in-process FakeS3), ``s3_moto`` (moto's in-process ``mock_aws``), ``s3_server`` (moto's server
over HTTP on 127.0.0.1) and ``s3_live`` (real S3, only with ``S3_TESTS=1``; the fixture skips
otherwise and says how to enable it). The reference is what Amazon S3 documents; where a
backend departs from it, the test marks itself strict-xfail on that backend only (if the
backend gets fixed the mark must go) and the reason says who is right and why.

The backend name is a module-scoped parameter, so pytest runs all the tests of one backend
together (``s3`` first): the in-process moto mock starts when the ``s3_moto`` group starts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pytest_certstore.fake_s3 import MIN_PART_SIZE

#: backend name (as S3Target.kind) -> the plugin fixture that provides it
BACKENDS = {"fake": "s3", "moto": "s3_moto", "server": "s3_server", "live": "s3_live"}
UTF8_KEYS = ["Curaçao/certificate.pdf", "東京/証明書.pdf", "Δ/a b+c&d=e.pdf"]


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    """Module-scoped so that the tests of one backend run together."""
    return str(request.param)


@pytest.fixture
def target(backend_name: str, request: pytest.FixtureRequest) -> Any:
    """The plugin's S3Target for this backend: a real boto3 client and a fresh bucket
    (on live: the configured bucket and a unique prefix)."""
    found = request.getfixturevalue(BACKENDS[backend_name])
    assert found.kind == backend_name
    return found


@pytest.fixture
def deviation(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``deviation(target, *kinds, reason=...)``: a documented departure from S3.

    Marks the running test strict-xfail when its backend is one of ``kinds`` (so a backend
    that gets fixed turns the mark into a failure and the mark must go).
    """

    def mark(target: Any, *kinds: str, reason: str) -> None:
        if target.kind in kinds:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{target.kind}: {reason}"))

    return mark


def needs_bucket_admin(target: Any) -> None:
    if target.kind == "live":
        pytest.skip("live runs use one given bucket: bucket create/delete is not tested there")


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# objects -------------------------------------------------------------------------------------


def test_put_get_head_etag_metadata_content_type(target: Any) -> None:
    client, key = target.client, target.key("cert.pdf")
    body = os.urandom(50 * 1024)
    put = client.put_object(
        Bucket=target.bucket,
        Key=key,
        Body=body,
        ContentType="application/pdf",
        Metadata={"Sha256": "abc"},
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'  # single part: quoted MD5
    got = client.get_object(Bucket=target.bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/pdf"
    assert got["Metadata"] == {"sha256": "abc"}  # S3 lower-cases user metadata names
    head = client.head_object(Bucket=target.bucket, Key=key)
    assert (head["ETag"], head["ContentLength"]) == (put["ETag"], len(body))
    assert head["LastModified"] == got["LastModified"]


@pytest.mark.parametrize("name", UTF8_KEYS)
def test_utf8_keys_round_trip_and_list(target: Any, name: str) -> None:
    key = target.key(name)
    target.client.put_object(Bucket=target.bucket, Key=key, Body=name.encode())
    assert target.client.get_object(Bucket=target.bucket, Key=key)["Body"].read() == name.encode()
    listed = target.client.list_objects_v2(Bucket=target.bucket, Prefix=target.prefix)
    assert [item["Key"] for item in listed["Contents"]] == [key]


def test_missing_key_errors(target: Any) -> None:
    client = target.client
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=target.bucket, Key=target.key("missing"))
    assert error_of(excinfo) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=target.bucket, Key=target.key("missing"))
    # A HEAD response has no body, so botocore can only report the status as the code.
    assert error_of(excinfo) == ("404", 404)


def test_missing_bucket_errors(target: Any) -> None:
    missing = f"conf-missing-{uuid.uuid4().hex}"
    with pytest.raises(ClientError) as excinfo:
        target.client.get_object(Bucket=missing, Key="k")
    assert error_of(excinfo) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as excinfo:
        target.client.list_objects_v2(Bucket=missing)
    assert error_of(excinfo) == ("NoSuchBucket", 404)


@pytest.mark.parametrize(
    ("header", "content", "content_range"),
    [
        ("bytes=0-9", b"0123456789", "bytes 0-9/36"),
        ("bytes=30-", b"uvwxyz", "bytes 30-35/36"),
        ("bytes=-4", b"wxyz", "bytes 32-35/36"),
        ("bytes=30-99", b"uvwxyz", "bytes 30-35/36"),
    ],
)
def test_ranges(target: Any, header: str, content: bytes, content_range: str) -> None:
    key = target.key("range")
    target.client.put_object(
        Bucket=target.bucket, Key=key, Body=b"0123456789abcdefghijklmnopqrstuvwxyz"
    )
    got = target.client.get_object(Bucket=target.bucket, Key=key, Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert (got["Body"].read(), got["ContentRange"]) == (content, content_range)


def test_unsatisfiable_range_is_416_invalid_range(target: Any) -> None:
    key = target.key("range")
    target.client.put_object(Bucket=target.bucket, Key=key, Body=b"0123456789")
    with pytest.raises(ClientError) as excinfo:
        target.client.get_object(Bucket=target.bucket, Key=key, Range="bytes=10-20")
    assert error_of(excinfo) == ("InvalidRange", 416)


def test_copy_object_metadata_directives(target: Any) -> None:
    client, bucket = target.client, target.bucket
    client.put_object(
        Bucket=bucket,
        Key=target.key("src"),
        Body=b"payload",
        ContentType="text/plain",
        Metadata={"owner": "a"},
    )
    source = {"Bucket": bucket, "Key": target.key("src")}
    client.copy_object(Bucket=bucket, Key=target.key("copy"), CopySource=source)
    head = client.head_object(Bucket=bucket, Key=target.key("copy"))
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"owner": "a"})
    client.copy_object(
        Bucket=bucket,
        Key=target.key("replaced"),
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"owner": "b"},
        ContentType="application/pdf",
    )
    head = client.head_object(Bucket=bucket, Key=target.key("replaced"))
    assert (head["ContentType"], head["Metadata"]) == ("application/pdf", {"owner": "b"})
    assert head["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'


def test_delete_object_and_delete_objects(target: Any) -> None:
    client, bucket = target.client, target.bucket
    for name in ("a", "b", "c"):
        client.put_object(Bucket=bucket, Key=target.key(name), Body=b"1")
    assert (
        client.delete_object(Bucket=bucket, Key=target.key("never-there"))["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 204
    )
    result = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": target.key("a")}, {"Key": target.key("b")}]}
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == [target.key("a"), target.key("b")]
    remaining = client.list_objects_v2(Bucket=bucket, Prefix=target.prefix)["Contents"]
    assert [o["Key"] for o in remaining] == [target.key("c")]


# listing -------------------------------------------------------------------------------------


def test_pagination_prefixes_and_delimiter(target: Any) -> None:
    client, bucket = target.client, target.bucket
    names = [f"p/{i:02d}" for i in range(7)] + ["q/x/1", "q/y", "r"]
    for name in names:
        client.put_object(Bucket=bucket, Key=target.key(name), Body=b"")
    first = client.list_objects_v2(Bucket=bucket, Prefix=target.prefix, MaxKeys=3)
    assert (first["KeyCount"], first["IsTruncated"]) == (3, True)
    pages = list(
        client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=target.prefix, PaginationConfig={"PageSize": 3}
        )
    )
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == [
        target.key(n) for n in names
    ]
    top = client.list_objects_v2(Bucket=bucket, Prefix=target.prefix, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [target.key("p/"), target.key("q/")]
    assert [o["Key"] for o in top["Contents"]] == [target.key("r")]
    after = client.list_objects_v2(
        Bucket=bucket, Prefix=target.prefix, StartAfter=target.key("q/x/1")
    )
    assert [o["Key"] for o in after["Contents"]] == [target.key("q/y"), target.key("r")]


# multipart -----------------------------------------------------------------------------------


def _start_upload(target: Any, key: str, parts: list[bytes]) -> tuple[str, list[dict[str, Any]]]:
    client = target.client
    upload_id = client.create_multipart_upload(Bucket=target.bucket, Key=key)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        etag = client.upload_part(
            Bucket=target.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    return upload_id, done


def test_multipart_etag_is_md5_of_part_md5s_with_count(target: Any) -> None:
    key = target.key("big.bin")
    parts = [os.urandom(MIN_PART_SIZE), b"tail"]
    upload_id, done = _start_upload(target, key, parts)
    result = target.client.complete_multipart_upload(
        Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert result["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-2"'
    assert target.client.get_object(Bucket=target.bucket, Key=key)["Body"].read() == b"".join(parts)


def _refused_completion(target: Any, name: str, **condition: str) -> None:
    """Complete an upload under a key someone wrote meanwhile, with ``condition``: 412, the
    key keeps what was written, and the upload stays open (aborted here)."""
    key = target.key(name)
    upload_id, done = _start_upload(target, key, [os.urandom(MIN_PART_SIZE), b"tail"])
    target.client.put_object(Bucket=target.bucket, Key=key, Body=b"written meanwhile")
    with pytest.raises(ClientError) as excinfo:
        target.client.complete_multipart_upload(
            Bucket=target.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            **condition,
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    got = target.client.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    assert got == b"written meanwhile"
    target.client.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id)


def test_multipart_completion_if_none_match_refuses_an_existing_key(target: Any) -> None:
    _refused_completion(target, "cond-new.bin", IfNoneMatch="*")


def test_multipart_completion_if_match_refuses_another_etag(
    target: Any, deviation: Callable[..., None]
) -> None:
    deviation(target, "moto", "server", reason="moto ignores If-Match on CompleteMultipartUpload")
    _refused_completion(target, "cond-old.bin", IfMatch='"0123456789abcdef0123456789abcdef"')


def test_multipart_errors(target: Any) -> None:
    client, key = target.client, target.key("m")
    upload_id, done = _start_upload(target, key, [b"too small", b"last"])
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert error_of(excinfo) == ("EntityTooSmall", 400)
    wrong = [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": wrong}
        )
    assert error_of(excinfo) == ("InvalidPart", 400)


def test_aborted_upload_is_no_such_upload(target: Any, deviation: Callable[..., None]) -> None:
    client, key = target.client, target.key("m")
    upload_id, _ = _start_upload(target, key, [b"part"])
    client.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id)
    deviation(
        target,
        "moto",
        "server",
        reason="moto fails with an internal KeyError (500 over HTTP) for a part sent to "
        "an aborted upload; S3 answers 404 NoSuchUpload",
    )
    with pytest.raises(ClientError) as excinfo:
        client.upload_part(
            Bucket=target.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"late"
        )
    assert error_of(excinfo) == ("NoSuchUpload", 404)


# checksums -----------------------------------------------------------------------------------


def test_correct_sha256_checksum_is_stored_and_returned(
    target: Any, deviation: Callable[..., None]
) -> None:
    deviation(
        target,
        "moto",
        "server",
        reason="moto ignores an x-amz-checksum-sha256 value sent without "
        "x-amz-sdk-checksum-algorithm (what boto3 sends for ChecksumSHA256=...), "
        "so GetObject returns no checksum; S3 stores it and returns it with "
        "ChecksumMode=ENABLED",
    )
    body = b"certificate" * 100
    sha = b64(hashlib.sha256(body).digest())
    key = target.key("sum")
    target.client.put_object(Bucket=target.bucket, Key=key, Body=body, ChecksumSHA256=sha)
    got = target.client.get_object(Bucket=target.bucket, Key=key, ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha
    assert got["Body"].read() == body


def test_wrong_sha256_checksum_is_rejected_with_bad_digest(
    target: Any, deviation: Callable[..., None]
) -> None:
    deviation(
        target,
        "moto",
        "server",
        reason="moto does not verify x-amz-checksum-* values: it stores the object; "
        "S3 rejects it with 400 BadDigest (the fake does too)",
    )
    wrong = b64(hashlib.sha256(b"something else").digest())
    with pytest.raises(ClientError) as excinfo:
        target.client.put_object(
            Bucket=target.bucket, Key=target.key("k"), Body=b"body", ChecksumSHA256=wrong
        )
    assert error_of(excinfo) == ("BadDigest", 400)
    assert (
        excinfo.value.response["Error"]["Message"]
        == "The SHA256 you specified did not match the calculated checksum."
    )


def test_wrong_content_md5_is_rejected_with_bad_digest(
    target: Any, deviation: Callable[..., None]
) -> None:
    deviation(
        target,
        "moto",
        "server",
        reason="moto does not verify Content-MD5 and stores the object; S3 answers 400 BadDigest",
    )
    with pytest.raises(ClientError) as excinfo:
        target.client.put_object(
            Bucket=target.bucket,
            Key=target.key("k"),
            Body=b"body",
            ContentMD5=b64(hashlib.md5(b"other").digest()),
        )
    assert error_of(excinfo) == ("BadDigest", 400)


# buckets and lifecycle -----------------------------------------------------------------------


def test_bucket_errors_and_us_east_1_recreate(target: Any) -> None:
    needs_bucket_admin(target)
    client = target.client
    name = f"conf-b-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    try:
        # S3 documents a legacy 200 OK for re-creating a bucket you own in us-east-1.
        assert client.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
        client.put_object(Bucket=name, Key="k", Body=b"1")
        with pytest.raises(ClientError) as excinfo:
            client.delete_bucket(Bucket=name)
        assert error_of(excinfo) == ("BucketNotEmpty", 409)
        client.delete_object(Bucket=name, Key="k")
    finally:
        client.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as excinfo:
        client.delete_bucket(Bucket=name)
    assert error_of(excinfo) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as excinfo:
        client.head_bucket(Bucket=name)
    assert error_of(excinfo) == ("404", 404)


def test_lifecycle_round_trip(target: Any) -> None:
    needs_bucket_admin(target)
    client, bucket = target.client, target.bucket
    with pytest.raises(ClientError) as excinfo:
        client.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(excinfo) == ("NoSuchLifecycleConfiguration", 404)
    rules = [
        {
            "ID": "expire-tmp",
            "Filter": {"Prefix": "tmp/"},
            "Status": "Enabled",
            "Expiration": {"Days": 7},
        },
        {
            "ID": "abort-mpu",
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
        },
    ]
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules}
    )
    assert client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules


# presigned GET over HTTP ---------------------------------------------------------------------


def _require_http(target: Any) -> None:
    if target.endpoint_url is None:
        pytest.skip(
            f"{target.kind} is in-process: a presigned URL is fetched by an HTTP "
            "client that never goes through botocore, so only server backends can "
            "answer it (presigning itself is client-side and tested in test_fake_s3)"
        )


def test_presigned_get_over_http(target: Any) -> None:
    _require_http(target)
    key = target.key("東京/cert.pdf")
    target.client.put_object(
        Bucket=target.bucket, Key=key, Body=b"%PDF presigned", ContentType="application/pdf"
    )
    url = target.client.generate_presigned_url(
        "get_object", Params={"Bucket": target.bucket, "Key": key}, ExpiresIn=60
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.read() == b"%PDF presigned"


def test_tampered_presigned_url_is_refused(target: Any, deviation: Callable[..., None]) -> None:
    _require_http(target)
    key = target.key("cert.pdf")
    target.client.put_object(Bucket=target.bucket, Key=key, Body=b"secret")
    url = target.client.generate_presigned_url(
        "get_object", Params={"Bucket": target.bucket, "Key": key}, ExpiresIn=60
    )
    tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
    assert tampered != url
    deviation(
        target,
        "server",
        reason="moto's server does not verify signatures by default; S3 answers 403 "
        "SignatureDoesNotMatch for a URL whose signed query was changed",
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(tampered, timeout=10).close()
    assert excinfo.value.code == 403


# isolation between backends ------------------------------------------------------------------


def test_server_endpoint_still_works_while_moto_mock_is_active(
    target: Any, request: pytest.FixtureRequest
) -> None:
    if target.kind != "moto":
        pytest.skip("checks the in-process mock's interplay with the server fixture")
    server = request.getfixturevalue("s3_server")  # while s3_moto's mock is active
    server.client.put_object(Bucket=server.bucket, Key="k", Body=b"over http")
    assert server.client.get_object(Bucket=server.bucket, Key="k")["Body"].read() == b"over http"
    assert target.client.list_objects_v2(Bucket=target.bucket)["KeyCount"] == 0
