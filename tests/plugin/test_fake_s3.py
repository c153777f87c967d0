"""FakeS3 driven through real boto3 clients: every operation, its errors, integrity checks.

The clients are real (validation, serialisation, signing, default CRC32 trailers, parsing and
retries are botocore's); only the socket is replaced by the fake at ``before-send``. What S3
itself would answer is the reference; where that is a documented quirk it is named.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from urllib3.response import HTTPResponse

from pytest_certstore.errors import PluginError
from pytest_certstore.fake_s3 import (
    MIN_PART_SIZE,
    BucketPool,
    FakeS3,
    FakeS3Error,
    UnsupportedOperationError,
)
from pytest_certstore.fake_s3._checksums import compute
from pytest_certstore.fake_s3._request import decode_aws_chunked

UTF8_KEYS = ["Curaçao/cert.pdf", "東京/証明書.pdf", "Δ/a b+c&d=e?.pdf", "dir//double/slash~"]


def make_client(region: str = "us-east-1", **config: Any) -> Any:
    return boto3.session.Session().client(
        "s3",
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            signature_version="s3v4", retries={"mode": "standard", "max_attempts": 3}, **config
        ),
    )


@pytest.fixture(scope="module")
def client() -> Any:
    return make_client()


@pytest.fixture
def fake(client: Any) -> Iterator[FakeS3]:
    fake = FakeS3()
    fake.attach(client)
    yield fake
    fake.detach(client)


@pytest.fixture
def bucket(fake: FakeS3) -> str:
    return fake.create_bucket("fake-unit")


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# buckets -------------------------------------------------------------------------------------


def test_bucket_lifecycle_create_head_list_delete(client: Any, fake: FakeS3) -> None:
    created = client.create_bucket(Bucket="fake-bucket-a")
    assert created["Location"] == "/fake-bucket-a"
    head = client.head_bucket(Bucket="fake-bucket-a")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["fake-bucket-a"]
    assert client.delete_bucket(Bucket="fake-bucket-a")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        client.head_bucket(Bucket="fake-bucket-a")
    assert error_of(excinfo) == ("404", 404)
    with pytest.raises(ClientError) as excinfo:
        client.delete_bucket(Bucket="fake-bucket-a")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_list_buckets_prefix_and_pages(client: Any, fake: FakeS3) -> None:
    for name in ("fake-list-a", "fake-list-b", "fake-list-c", "other-bucket"):
        fake.create_bucket(name)
    listed = client.list_buckets(Prefix="fake-list-")
    assert [b["Name"] for b in listed["Buckets"]] == ["fake-list-a", "fake-list-b", "fake-list-c"]
    first = client.list_buckets(MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == ["fake-list-a", "fake-list-b"]
    rest = client.list_buckets(MaxBuckets=2, ContinuationToken=first["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == ["fake-list-c", "other-bucket"]
    with pytest.raises(ClientError) as excinfo:
        client.list_buckets(ContinuationToken="%%%")
    assert error_of(excinfo) == ("InvalidArgument", 400)


def test_recreate_own_bucket_is_200_in_us_east_1_and_409_elsewhere(
    client: Any, fake: FakeS3
) -> None:
    # S3's documented legacy: in us-east-1 re-creating a bucket you own returns 200 OK;
    # every other region answers 409 BucketAlreadyOwnedByYou.
    client.create_bucket(Bucket="fake-again")
    assert client.create_bucket(Bucket="fake-again")["ResponseMetadata"]["HTTPStatusCode"] == 200
    eu = fake.attach(make_client("eu-west-1"))
    config = {"LocationConstraint": "eu-west-1"}
    eu.create_bucket(Bucket="fake-eu", CreateBucketConfiguration=config)
    with pytest.raises(ClientError) as excinfo:
        eu.create_bucket(Bucket="fake-eu", CreateBucketConfiguration=config)
    assert error_of(excinfo) == ("BucketAlreadyOwnedByYou", 409)
    assert eu.get_bucket_location(Bucket="fake-eu")["LocationConstraint"] == "eu-west-1"
    assert client.get_bucket_location(Bucket="fake-again")["LocationConstraint"] is None


def test_region_rules_for_location_constraint(fake: FakeS3) -> None:
    eu = fake.attach(make_client("eu-west-1"))
    with pytest.raises(ClientError) as excinfo:
        eu.create_bucket(Bucket="fake-no-constraint")
    assert error_of(excinfo) == ("IllegalLocationConstraintException", 400)
    us = fake.attach(make_client("us-east-1"))
    with pytest.raises(ClientError) as excinfo:
        us.create_bucket(
            Bucket="fake-us", CreateBucketConfiguration={"LocationConstraint": "us-east-1"}
        )
    assert error_of(excinfo) == ("InvalidLocationConstraint", 400)


@pytest.mark.parametrize("name", ["ab", "Upper-case", "192.168.1.1", "a..b", "-dash", "x" * 64])
def test_invalid_bucket_names_are_rejected(client: Any, fake: FakeS3, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.create_bucket(Bucket=name)
    assert error_of(excinfo) == ("InvalidBucketName", 400)


def test_delete_non_empty_bucket_is_409(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"1")
    with pytest.raises(ClientError) as excinfo:
        client.delete_bucket(Bucket=bucket)
    assert error_of(excinfo) == ("BucketNotEmpty", 409)


# objects -------------------------------------------------------------------------------------


def test_put_get_head_round_trip(client: Any, bucket: str) -> None:
    body = b"%PDF-1.7 certificate" * 100
    put = client.put_object(
        Bucket=bucket,
        Key="a/cert.pdf",
        Body=body,
        ContentType="application/pdf",
        Metadata={"sha256": "abc", "Tournament": "7"},
        ContentDisposition="attachment",
        CacheControl="no-cache",
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = client.get_object(Bucket=bucket, Key="a/cert.pdf")
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    assert got["ContentType"] == "application/pdf"
    assert got["ContentLength"] == len(body)
    assert got["Metadata"] == {"sha256": "abc", "tournament": "7"}
    assert got["ContentDisposition"] == "attachment"
    assert got["CacheControl"] == "no-cache"
    head = client.head_object(Bucket=bucket, Key="a/cert.pdf")
    assert head["ContentLength"] == len(body)
    assert head["LastModified"] == got["LastModified"]
    assert head["Metadata"] == got["Metadata"]


def test_default_content_type_is_binary_octet_stream(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert client.head_object(Bucket=bucket, Key="k")["ContentType"] == "binary/octet-stream"


@pytest.mark.parametrize("key", UTF8_KEYS)
def test_utf8_and_special_keys_round_trip(client: Any, bucket: str, key: str) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [key]


def test_missing_key_and_bucket_errors(client: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="missing")
    assert error_of(excinfo) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=bucket, Key="missing")
    assert error_of(excinfo) == ("404", 404)  # HEAD errors carry no body, so no code
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket="fake-no-such-bucket", Key="k")
    assert error_of(excinfo) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket="fake-no-such-bucket", Key="k", Body=b"1")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_key_longer_than_1024_bytes_is_rejected(client: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket=bucket, Key="é" * 513, Body=b"1")
    assert error_of(excinfo) == ("KeyTooLongError", 400)


@pytest.mark.parametrize(
    ("header", "status", "content", "content_range"),
    [
        ("bytes=0-9", 206, b"0123456789", "bytes 0-9/36"),
        ("bytes=30-", 206, b"uvwxyz", "bytes 30-35/36"),
        ("bytes=-4", 206, b"wxyz", "bytes 32-35/36"),
        ("bytes=30-99", 206, b"uvwxyz", "bytes 30-35/36"),
        ("bytes=-99", 206, b"0123456789abcdefghijklmnopqrstuvwxyz", "bytes 0-35/36"),
        ("bytes=5-2", 200, b"0123456789abcdefghijklmnopqrstuvwxyz", None),  # ignored, as S3
        ("bytes=0-1,4-5", 200, b"0123456789abcdefghijklmnopqrstuvwxyz", None),  # multi: ignored
    ],
)
def test_ranges(
    client: Any, bucket: str, header: str, status: int, content: bytes, content_range: str | None
) -> None:
    client.put_object(Bucket=bucket, Key="r", Body=b"0123456789abcdefghijklmnopqrstuvwxyz")
    got = client.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == status
    assert got["Body"].read() == content
    assert got.get("ContentRange") == content_range


@pytest.mark.parametrize("header", ["bytes=36-", "bytes=100-200"])
def test_unsatisfiable_range_is_416(client: Any, bucket: str, header: str) -> None:
    client.put_object(Bucket=bucket, Key="r", Body=b"0123456789abcdefghijklmnopqrstuvwxyz")
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="r", Range=header)
    assert error_of(excinfo) == ("InvalidRange", 416)
    assert excinfo.value.response["Error"]["ActualObjectSize"] == "36"


def test_conditional_requests(client: Any, bucket: str) -> None:
    etag = client.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    assert client.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert error_of(excinfo) == ("304", 304)
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket=bucket, Key="c", Body=b"v2", IfNoneMatch="*")
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    client.put_object(Bucket=bucket, Key="new", Body=b"v2", IfNoneMatch="*")
    assert client.get_object(Bucket=bucket, Key="new")["Body"].read() == b"v2"


def test_delete_object_is_204_even_when_missing(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"1")
    for _ in range(2):
        assert (
            client.delete_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPStatusCode"]
            == 204
        )
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_delete_objects_reports_each_key_and_quiet_reports_none(client: Any, bucket: str) -> None:
    for key in ("a", "b", "c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"1")
    loud = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "zz"}]})
    assert sorted(d["Key"] for d in loud["Deleted"]) == ["a", "zz"]
    quiet = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["c"]


def test_copy_object_copy_and_replace_directives(client: Any, bucket: str) -> None:
    client.put_object(
        Bucket=bucket, Key="src", Body=b"payload", ContentType="text/plain", Metadata={"owner": "a"}
    )
    copied = client.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}
    )
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'
    head = client.head_object(Bucket=bucket, Key="dst")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"owner": "a"})
    client.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        Metadata={"owner": "b"},
        ContentType="application/pdf",
    )
    head = client.head_object(Bucket=bucket, Key="dst2")
    assert (head["ContentType"], head["Metadata"]) == ("application/pdf", {"owner": "b"})
    assert client.get_object(Bucket=bucket, Key="dst2")["Body"].read() == b"payload"


def test_copy_object_errors(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="src", Body=b"1")
    with pytest.raises(ClientError) as excinfo:
        client.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(excinfo) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as excinfo:
        client.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "nope"})
    assert error_of(excinfo) == ("NoSuchKey", 404)
    utf8 = "東京 +.pdf"
    client.put_object(Bucket=bucket, Key=utf8, Body=b"tokyo")
    client.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": utf8})
    assert client.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"tokyo"


# listing -------------------------------------------------------------------------------------


def test_list_prefix_delimiter_and_common_prefixes(client: Any, bucket: str) -> None:
    for key in ("a/1", "a/2", "b/x/1", "b/y", "c", "ca"):
        client.put_object(Bucket=bucket, Key=key, Body=b"1")
    top = client.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in top["Contents"]] == ["c", "ca"]
    assert top["KeyCount"] == 4
    under_b = client.list_objects_v2(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [p["Prefix"] for p in under_b["CommonPrefixes"]] == ["b/x/"]
    assert [o["Key"] for o in under_b["Contents"]] == ["b/y"]
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="c")["Contents"]] == [
        "c",
        "ca",
    ]
    after = client.list_objects_v2(Bucket=bucket, StartAfter="b/y")
    assert [o["Key"] for o in after["Contents"]] == ["c", "ca"]
    assert after["StartAfter"] == "b/y"


def test_pagination_with_max_keys_and_continuation(client: Any, bucket: str) -> None:
    keys = [*sorted(f"p/{i:03d}" for i in range(25)), "q/é +1", "q/é +2"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    first = client.list_objects_v2(Bucket=bucket, MaxKeys=10)
    assert first["IsTruncated"] is True and first["KeyCount"] == 10
    assert "NextContinuationToken" in first
    pages = list(
        client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 4}
        )
    )
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    assert len(pages) == 7 and pages[-1]["IsTruncated"] is False
    grouped = list(
        client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}
        )
    )
    assert [p["Prefix"] for page in grouped for p in page.get("CommonPrefixes", [])] == ["p/", "q/"]


def test_list_missing_bucket_and_bad_token(client: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.list_objects_v2(Bucket="fake-missing-bucket")
    assert error_of(excinfo) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as excinfo:
        client.list_objects_v2(Bucket=bucket, ContinuationToken="!!!")
    assert error_of(excinfo) == ("InvalidArgument", 400)


# multipart -----------------------------------------------------------------------------------


def _upload_parts(
    client: Any, bucket: str, key: str, parts: list[bytes], **create: Any
) -> tuple[str, list[dict[str, Any]]]:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        extra = (
            {"ChecksumAlgorithm": create["ChecksumAlgorithm"]}
            if create.get("ChecksumAlgorithm")
            else {}
        )
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **extra
        )["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    return upload_id, done


def test_multipart_upload_complete(client: Any, bucket: str) -> None:
    parts = [b"a" * MIN_PART_SIZE, b"tail"]
    upload_id, done = _upload_parts(
        client, bucket, "big.bin", parts, ContentType="text/x", Metadata={"m": "1"}
    )
    listed = client.list_parts(Bucket=bucket, Key="big.bin", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, MIN_PART_SIZE), (2, 4)]
    uploads = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload_id]
    result = client.complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert result["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-2"'
    got = client.get_object(Bucket=bucket, Key="big.bin")
    assert got["Body"].read() == b"".join(parts)
    assert (got["ContentType"], got["Metadata"]) == ("text/x", {"m": "1"})
    with pytest.raises(ClientError) as excinfo:
        client.list_parts(Bucket=bucket, Key="big.bin", UploadId=upload_id)
    assert error_of(excinfo) == ("NoSuchUpload", 404)


def test_multipart_completion_honours_write_conditions(client: Any, bucket: str) -> None:
    """As on PutObject: ``If-None-Match: *`` refuses an existing key, ``If-Match`` another
    ETag (412) or a missing key (404); a refused completion leaves the upload open."""
    parts = [b"c" * MIN_PART_SIZE, b"last"]
    upload_id, done = _upload_parts(client, bucket, "cond.bin", parts)
    complete = {"Bucket": bucket, "Key": "cond.bin", "UploadId": upload_id}
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            **complete, MultipartUpload={"Parts": done}, IfMatch='"0000"'
        )
    assert error_of(excinfo) == ("NoSuchKey", 404)
    old = client.put_object(Bucket=bucket, Key="cond.bin", Body=b"old")["ETag"]
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            **complete, MultipartUpload={"Parts": done}, IfNoneMatch="*"
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            **complete, MultipartUpload={"Parts": done}, IfMatch='"0000"'
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=bucket, Key="cond.bin")["Body"].read() == b"old"
    client.complete_multipart_upload(**complete, MultipartUpload={"Parts": done}, IfMatch=old)
    assert client.get_object(Bucket=bucket, Key="cond.bin")["Body"].read() == b"".join(parts)


def test_multipart_with_sha256_gives_composite_checksum(client: Any, bucket: str) -> None:
    parts = [b"b" * MIN_PART_SIZE, b"end"]
    upload_id, done = _upload_parts(client, bucket, "sum.bin", parts, ChecksumAlgorithm="SHA256")
    for item, data in zip(done, parts, strict=True):
        item["ChecksumSHA256"] = b64(hashlib.sha256(data).digest())
    result = client.complete_multipart_upload(
        Bucket=bucket, Key="sum.bin", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert result["ChecksumSHA256"] == f"{b64(composite)}-2"
    head = client.head_object(Bucket=bucket, Key="sum.bin", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == f"{b64(composite)}-2"


def test_multipart_errors(client: Any, bucket: str) -> None:
    upload_id, done = _upload_parts(client, bucket, "m", [b"small", b"parts"])
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
    assert error_of(excinfo) == ("EntityTooSmall", 400)
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload_id, MultipartUpload={"Parts": done[::-1]}
        )
    assert error_of(excinfo) == ("InvalidPartOrder", 400)
    wrong = [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload_id, MultipartUpload={"Parts": wrong}
        )
    assert error_of(excinfo) == ("InvalidPart", 400)
    assert (
        client.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload_id)[
            "ResponseMetadata"
        ]["HTTPStatusCode"]
        == 204
    )
    with pytest.raises(ClientError) as excinfo:
        client.upload_part(Bucket=bucket, Key="m", UploadId=upload_id, PartNumber=3, Body=b"x")
    assert error_of(excinfo) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as excinfo:
        client.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload_id)
    assert error_of(excinfo) == ("NoSuchUpload", 404)


def test_min_part_size_is_configurable(client: Any) -> None:
    small = FakeS3(min_part_size=1)
    small.attach(client)
    try:
        small.create_bucket("fake-small-parts")
        upload_id, done = _upload_parts(client, "fake-small-parts", "m", [b"ab", b"cd"])
        client.complete_multipart_upload(
            Bucket="fake-small-parts", Key="m", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
        assert small.object_bytes("fake-small-parts", "m") == b"abcd"
    finally:
        small.detach(client)


# lifecycle -----------------------------------------------------------------------------------


RULES = [
    {
        "ID": "expire-tmp",
        "Filter": {"Prefix": "tmp/"},
        "Status": "Enabled",
        "Expiration": {"Days": 7},
    },
    {
        "ID": "abort-mpu",
        "Filter": {},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    },
    {
        "ID": "glacier",
        "Filter": {"Prefix": "certificates/"},
        "Status": "Disabled",
        "Transitions": [{"Days": 365, "StorageClass": "GLACIER"}],
    },
]


def test_lifecycle_put_get_delete(client: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(excinfo) == ("NoSuchLifecycleConfiguration", 404)
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": RULES}
    )
    assert client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == RULES
    client.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        client.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(excinfo) == ("NoSuchLifecycleConfiguration", 404)


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (
            {"ID": "x", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 0}},
            "InvalidArgument",
        ),
        (
            {
                "ID": "x",
                "Filter": {},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 0},
            },
            "InvalidArgument",
        ),
        ({"ID": "x", "Filter": {}, "Status": "Enabled"}, "InvalidRequest"),
    ],
)
def test_invalid_lifecycle_rules_are_rejected(
    client: Any, bucket: str, rule: dict[str, Any], code: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [rule]}
        )
    assert error_of(excinfo) == (code, 400)


def test_duplicate_lifecycle_rule_ids_are_rejected(client: Any, bucket: str) -> None:
    rule = {"ID": "same", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}}
    with pytest.raises(ClientError) as excinfo:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [rule, rule]}
        )
    assert error_of(excinfo) == ("InvalidArgument", 400)


# integrity -----------------------------------------------------------------------------------


def test_correct_checksums_are_accepted_stored_and_returned(client: Any, bucket: str) -> None:
    body = b"certificate bytes"
    sha = b64(hashlib.sha256(body).digest())
    put = client.put_object(
        Bucket=bucket,
        Key="k",
        Body=body,
        ChecksumSHA256=sha,
        ContentMD5=b64(hashlib.md5(body).digest()),
    )
    assert put["ChecksumSHA256"] == sha
    got = client.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha
    assert got["Body"].read() == body
    head = client.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha


def test_default_crc32_trailer_is_verified_and_stored(client: Any, bucket: str) -> None:
    body = b"x" * 50_000
    put = client.put_object(Bucket=bucket, Key="k", Body=body)  # aws-chunked + CRC32 trailer
    crc = b64((zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "big"))
    assert put["ChecksumCRC32"] == crc
    assert client.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"ChecksumSHA256": b64(hashlib.sha256(b"other").digest())}, "BadDigest"),
        ({"ChecksumSHA256": "bad"}, "InvalidRequest"),
        ({"ChecksumSHA1": b64(hashlib.sha1(b"other").digest())}, "BadDigest"),
        ({"ChecksumCRC32": b64(b"\x00\x00\x00\x01")}, "BadDigest"),
        ({"ChecksumCRC32C": b64(b"\x00\x00\x00\x01")}, "BadDigest"),
        ({"ContentMD5": b64(hashlib.md5(b"other").digest())}, "BadDigest"),
        ({"ContentMD5": "not-md5"}, "InvalidDigest"),
    ],
)
def test_integrity_mismatch_is_rejected(
    client: Any, bucket: str, params: dict[str, str], code: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket=bucket, Key="k", Body=b"the real body", **params)
    assert error_of(excinfo) == (code, 400)
    if code == "BadDigest" and "ChecksumSHA256" in params:
        assert (
            excinfo.value.response["Error"]["Message"]
            == "The SHA256 you specified did not match the calculated checksum."
        )
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_body_corrupted_in_transit_fails_the_crc32_trailer(client: Any, bucket: str) -> None:
    def corrupt(request: Any, **_: Any) -> None:
        raw = request.body.read()
        start = raw.index(b"\r\n") + 2
        request.body = raw[:start] + bytes([raw[start] ^ 1]) + raw[start + 1 :]

    client.meta.events.register("before-send.s3.PutObject", corrupt)
    try:
        with pytest.raises(ClientError) as excinfo:
            client.put_object(Bucket=bucket, Key="k", Body=b"hello world")
    finally:
        client.meta.events.unregister("before-send.s3.PutObject", corrupt)
    assert error_of(excinfo) == ("BadDigest", 400)
    assert "CRC32" in excinfo.value.response["Error"]["Message"]


def test_upload_part_checksum_is_verified(client: Any, bucket: str) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    with pytest.raises(ClientError) as excinfo:
        client.upload_part(
            Bucket=bucket,
            Key="m",
            UploadId=upload_id,
            PartNumber=1,
            Body=b"part",
            ChecksumSHA256=b64(hashlib.sha256(b"x").digest()),
        )
    assert error_of(excinfo) == ("BadDigest", 400)


def test_signed_payload_hash_is_verified(bucket: str, fake: FakeS3) -> None:
    # With a checksum given and no aws-chunked encoding, botocore signs the payload hash
    # (X-Amz-Content-SHA256 = hex SHA-256 of the body); S3 rejects a body that does not match.
    http = fake.attach(make_client(request_checksum_calculation="when_required"))
    http.put_object(Bucket=bucket, Key="k", Body=b"ok")

    def corrupt(request: Any, **_: Any) -> None:
        request.body = b"tampered"

    http.meta.events.register("before-send.s3.PutObject", corrupt)
    with pytest.raises(ClientError) as excinfo:
        http.put_object(
            Bucket=bucket,
            Key="k2",
            Body=b"original",
            ChecksumSHA256=b64(hashlib.sha256(b"original").digest()),
        )
    assert error_of(excinfo) == ("XAmzContentSHA256Mismatch", 400)


def test_crc_implementations_match_known_vectors() -> None:
    assert compute("crc32c", b"123456789") == (0xE3069283).to_bytes(4, "big")
    assert compute("crc64nvme", b"123456789") == (0xAE8B14860A799888).to_bytes(8, "big")
    assert compute("crc32", b"123456789") == (0xCBF43926).to_bytes(4, "big")


def test_aws_chunked_decoding() -> None:
    payload, trailers = decode_aws_chunked(
        b"5;chunk-signature=abc\r\nhello\r\n1\r\n!\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    )
    assert payload == b"hello!"
    assert trailers == {"x-amz-checksum-crc32": "AAAAAA=="}


# unsupported, attach/detach, addressing, threads ---------------------------------------------


def test_unsupported_operation_fails_loudly_naming_s3_moto(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"1")
    with pytest.raises(UnsupportedOperationError, match="s3_moto") as excinfo:
        client.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": []})
    assert "PutObjectTagging" in str(excinfo.value)
    with pytest.raises(UnsupportedOperationError, match="ListObjects"):
        client.list_objects(Bucket=bucket)
    with pytest.raises(UnsupportedOperationError, match="s3_moto"):
        client.get_bucket_versioning(Bucket=bucket)


@pytest.mark.parametrize(
    "params",
    [
        {"Tagging": "a=b"},
        {"StorageClass": "GLACIER"},
        {"ServerSideEncryption": "aws:kms"},
        {"ACL": "public-read"},
        {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
    ],
    ids=["tagging", "storage-class", "kms", "acl", "sse-c"],
)
def test_write_options_the_fake_would_drop_fail_loudly(
    client: Any, bucket: str, params: dict[str, str]
) -> None:
    with pytest.raises(UnsupportedOperationError, match="s3_moto"):
        client.put_object(Bucket=bucket, Key="k", Body=b"1", **params)
    client.put_object(
        Bucket=bucket,
        Key="k",
        Body=b"1",
        ACL="private",
        StorageClass="STANDARD",
        ServerSideEncryption="AES256",
    )


def test_date_conditions(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="d", Body=b"1")
    modified = client.head_object(Bucket=bucket, Key="d")["LastModified"]
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="d", IfModifiedSince=modified)
    assert error_of(excinfo) == ("304", 304)
    earlier = modified.replace(year=modified.year - 1)
    assert client.get_object(Bucket=bucket, Key="d", IfModifiedSince=earlier)["Body"].read() == b"1"
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="d", IfUnmodifiedSince=earlier)
    assert error_of(excinfo) == ("PreconditionFailed", 412)


def test_response_overrides(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="o", Body=b"1", ContentType="application/pdf")
    got = client.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="text/plain",
        ResponseContentDisposition="attachment; filename=x.pdf",
    )
    assert (got["ContentType"], got["ContentDisposition"]) == (
        "text/plain",
        "attachment; filename=x.pdf",
    )


def test_attach_is_idempotent_and_detach_stops_answering(bucket: str, fake: FakeS3) -> None:
    own = make_client()
    assert fake.attach(own) is own
    fake.attach(own)
    own.head_bucket(Bucket=bucket)
    assert fake.operations.count("HeadBucket") == 1
    fake.detach(own)
    fake.detach(own)

    def sentinel(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(
            request.url, 418, {}, HTTPResponse(io.BytesIO(b""), preload_content=False)
        )

    own.meta.events.register("before-send.s3", sentinel)
    with pytest.raises(ClientError) as excinfo:
        own.head_bucket(Bucket=bucket)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 418
    assert fake.operations.count("HeadBucket") == 1


def test_attach_rejects_a_non_s3_client() -> None:
    sqs = boto3.session.Session().client(
        "sqs", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    with pytest.raises(FakeS3Error, match="S3 client"):
        FakeS3().attach(sqs)


@pytest.mark.parametrize(
    "config",
    [
        {"s3": {"addressing_style": "path"}},
        {"s3": {"addressing_style": "virtual"}},
    ],
    ids=["path", "virtual"],
)
def test_path_and_virtual_host_addressing(fake: FakeS3, config: dict[str, Any]) -> None:
    styled = fake.attach(make_client(**config))
    styled.create_bucket(Bucket="fake.dotted-name")
    styled.put_object(Bucket="fake.dotted-name", Key="a/b.pdf", Body=b"1")
    assert fake.object_bytes("fake.dotted-name", "a/b.pdf") == b"1"


def test_custom_endpoint_url_is_answered_too(fake: FakeS3) -> None:
    custom = boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://minio.invalid:9000",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    fake.attach(custom)
    custom.create_bucket(Bucket="fake-custom")
    assert fake.bucket_names() == ["fake-custom"]


def test_concurrent_clients_and_threads(client: Any, bucket: str) -> None:
    errors: list[BaseException] = []
    written = {f"{i}-{n}".encode() * 100 for i in range(6) for n in range(20)}

    def worker(index: int) -> None:
        try:
            for n in range(20):
                key = f"t{index}/{n}"
                body = f"{index}-{n}".encode() * 100
                client.put_object(Bucket=bucket, Key=key, Body=body)
                client.put_object(Bucket=bucket, Key="shared", Body=body)
                assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for page in pages for o in page["Contents"]]
    assert len(keys) == 6 * 20 + 1
    shared = client.get_object(Bucket=bucket, Key="shared")["Body"].read()
    assert shared in written  # one whole write won; no torn or mixed body


# convenience API and the name pool ------------------------------------------------------------


def test_create_bucket_convenience_and_reset(client: Any, fake: FakeS3) -> None:
    fake.create_bucket("fake-conv")
    client.put_object(Bucket="fake-conv", Key="k", Body=b"1")
    with pytest.raises(FakeS3Error, match="already exists"):
        fake.create_bucket("fake-conv")
    fake.create_bucket("fake-conv", replace=True)
    assert "Contents" not in client.list_objects_v2(Bucket="fake-conv")
    with pytest.raises(FakeS3Error, match="invalid bucket name"):
        fake.create_bucket("NO")
    fake.reset()
    assert fake.bucket_names() == [] and fake.operations == []
    with pytest.raises(KeyError):
        fake.object_bytes("fake-conv", "k")


def test_bucket_pool_leases_lowest_free_name() -> None:
    pool = BucketPool("Pool")
    first, second = pool.acquire(), pool.acquire()
    assert (first, second) == ("pool-0", "pool-1")
    pool.release(first)
    assert pool.acquire() == "pool-0"
    assert pool.leased == 2
    pool.release("unrelated-7")
    assert pool.leased == 2


def test_presigned_url_is_generated_client_side(client: Any, bucket: str) -> None:
    # Presigning never sends a request, so it works with the fake; *fetching* the URL needs a
    # real endpoint (see the conformance suite's presigned test on the server backends).
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "a b"}, ExpiresIn=60
    )
    assert "X-Amz-Signature=" in url and "a%20b" in url and bucket in url


def test_an_active_moto_mock_does_not_also_execute_fake_requests() -> None:
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    fake = FakeS3()
    attached = fake.attach(make_client())
    mock = mock_aws()
    mock.start(reset=False)
    try:
        attached.create_bucket(Bucket="fake-only-bucket")
        moto_buckets = s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets
        assert "fake-only-bucket" not in moto_buckets
        fake.detach(attached)
        fake.detach(attached)
        attached.create_bucket(Bucket="moto-after-detach")
        assert "moto-after-detach" in moto_buckets  # moto's handler is back, exactly once
        attached.delete_bucket(Bucket="moto-after-detach")
    finally:
        mock.stop(remove_data=False)
    assert fake.bucket_names() == ["fake-only-bucket"]


def test_unsupported_operation_error_pickles_with_its_context() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(UnsupportedOperationError("PutObjectTagging", "PUT /b/k")))
    assert (err.operation, err.detail) == ("PutObjectTagging", "PUT /b/k")
    assert "s3_moto" in str(err) and isinstance(err, NotImplementedError)
    assert isinstance(err, PluginError) and err.context["operation"] == "PutObjectTagging"


def test_handlers_registered_first_win_whatever_the_attach_order(
    client: Any, bucket: str, fake: FakeS3
) -> None:
    # Fault injection registers first on before-send.s3, usually *after* the session's fake
    # was attached; its 503s must reach botocore's retry handler, and the neutralised request
    # (pointed at an .invalid host) must not be executed by the fake.
    attempts: list[int] = []

    def slow_down(request: Any, **_: Any) -> AWSResponse | None:
        attempts.append(1)
        if len(attempts) > 2:
            return None
        request.url = "http://neutralised.invalid/"
        body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
        return AWSResponse(
            request.url,
            503,
            {"Content-Length": str(len(body))},
            HTTPResponse(io.BytesIO(body), preload_content=False),
        )

    client.meta.events.register_first("before-send.s3", slow_down, unique_id="test-slow-down")
    try:
        response = client.put_object(Bucket=bucket, Key="k", Body=b"stored once")
    finally:
        client.meta.events.unregister("before-send.s3", unique_id="test-slow-down")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(attempts) == 3
    assert fake.operations == ["PutObject"]
    assert fake.object_bytes(bucket, "k") == b"stored once"
