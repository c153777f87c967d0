"""The same fault rules over HTTP (``s3_fault_proxy``): for clients outside this process."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from pytest_certstore.fault_proxy import FaultProxy, infer_operation
from pytest_certstore.targets import make_client


def test_503_twice_then_success_through_the_proxy(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    client = s3_fault_proxy.client
    s3_fault_proxy.inject("SlowDown", "PutObject", times=2)
    response = client.put_object(Bucket=s3_fault_proxy.bucket, Key="k.pdf", Body=b"data")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert [c.effects for c in s3_fault_proxy.calls] == [("SlowDown/503",), ("SlowDown/503",), ()]
    assert s3_fault_proxy.target.get("k.pdf") == b"data"


def test_error_replies_are_s3_shaped(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    s3_fault_proxy.target.put("k.pdf", b"data")
    s3_fault_proxy.inject("NoSuchKey", ("GetObject", "HeadObject"))
    with pytest.raises(ClientError) as caught:
        s3_fault_proxy.client.get_object(Bucket=s3_fault_proxy.bucket, Key="k.pdf")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert (
        caught.value.response["ResponseMetadata"]["HTTPHeaders"]["x-certstore-fault"]
        == "NoSuchKey/404"
    )
    with pytest.raises(ClientError, match="404"):
        s3_fault_proxy.client.head_object(Bucket=s3_fault_proxy.bucket, Key="k.pdf")
    assert s3_fault_proxy.attempts() == 2  # 404s are not retried


def test_timeout_holds_the_connection_until_the_client_gives_up(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    client = make_client(s3_fault_proxy.url, read_timeout=0.3, max_attempts=2)
    s3_fault_proxy.target.put("k.pdf", b"data")
    s3_fault_proxy.inject("timeout", "GetObject")
    start = time.perf_counter()
    with pytest.raises(ReadTimeoutError):
        client.get_object(Bucket=s3_fault_proxy.bucket, Key="k.pdf")
    assert time.perf_counter() - start >= 0.6
    # the proxy counts a request once its handler thread has read it: give a loaded machine time
    deadline = time.monotonic() + 10
    while s3_fault_proxy.attempts("GetObject") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s3_fault_proxy.attempts("GetObject") == 2


@pytest.mark.parametrize("effect", ["reset", "refused"])
def test_reset_drops_the_connection(s3_fault_proxy, effect: str) -> None:  # type: ignore[no-untyped-def]
    """At the proxy, 'refused' is a reset too: the connection was already accepted."""
    s3_fault_proxy.inject(effect, "HeadBucket", times=1)
    response = s3_fault_proxy.client.head_bucket(Bucket=s3_fault_proxy.bucket)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    s3_fault_proxy.clear()
    s3_fault_proxy.inject(effect, "HeadBucket")
    with pytest.raises(ConnectionClosedError):
        s3_fault_proxy.client.head_bucket(Bucket=s3_fault_proxy.bucket)
    assert s3_fault_proxy.attempts("HeadBucket") == 3


def test_corrupt_flips_a_byte_in_flight(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(256)) * 40
    s3_fault_proxy.target.put("k.bin", payload)
    s3_fault_proxy.inject("corrupt", "GetObject")
    url = s3_fault_proxy.client.generate_presigned_url(
        "get_object", Params={"Bucket": s3_fault_proxy.bucket, "Key": "k.bin"}
    )
    assert url.startswith(s3_fault_proxy.url)
    with urllib.request.urlopen(url, timeout=10) as response:  # a non-boto3 client
        body = response.read()
        assert response.headers["x-certstore-fault"] == "corrupt"
    assert len(body) == len(payload) and body != payload
    assert sum(a != b for a, b in zip(body, payload, strict=True)) == 1


def test_latency_through_the_proxy(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    s3_fault_proxy.inject("latency:40ms", "HeadBucket")
    start = time.perf_counter()
    s3_fault_proxy.client.head_bucket(Bucket=s3_fault_proxy.bucket)
    assert (time.perf_counter() - start) * 1000 >= 40


def test_large_and_streamed_bodies_pass_intact(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    client, bucket = s3_fault_proxy.client, s3_fault_proxy.bucket
    big = os.urandom(6 * 1024 * 1024 + 17)
    client.put_object(Bucket=bucket, Key="big.bin", Body=big)
    # An unseekable body: botocore streams it aws-chunked with a trailing checksum.
    client.upload_fileobj(io.BufferedReader(io.BytesIO(big)), bucket, "streamed.bin")  # type: ignore[arg-type]
    for key in ("big.bin", "streamed.bin"):
        assert s3_fault_proxy.target.get(key) == big  # what the server stored
        through = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert through == big  # what the proxy relayed back
    assert {c.operation for c in s3_fault_proxy.calls} >= {"PutObject", "GetObject"}


def test_the_proxy_bounds_its_connections(s3_server_url: str) -> None:
    with FaultProxy(s3_server_url, max_connections=1, queue_timeout=0.2) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as held:
            held.sendall(b"")
            time.sleep(0.05)
            with socket.create_connection((host, int(port))) as extra:
                extra.settimeout(5)
                assert extra.recv(1) == b""  # dropped: no slot within queue_timeout


def test_proxy_refuses_non_loopback_and_bad_upstreams() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://127.0.0.1:1", host="0.0.0.0")
    with pytest.raises(ValueError, match="http://"):
        FaultProxy("https://s3.amazonaws.com")


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "expected"),
    [
        ("GET", "/", {}, {}, ("ListBuckets", None, None)),
        ("PUT", "/b", {}, {}, ("CreateBucket", "b", None)),
        ("GET", "/b", {"list-type": "2"}, {}, ("ListObjectsV2", "b", None)),
        ("POST", "/b", {"delete": ""}, {}, ("DeleteObjects", "b", None)),
        ("GET", "/b", {"lifecycle": ""}, {}, ("GetBucketLifecycleConfiguration", "b", None)),
        ("PUT", "/b/a%20b/c.pdf", {}, {}, ("PutObject", "b", "a b/c.pdf")),
        ("PUT", "/b/k", {}, {"x-amz-copy-source": "b/j"}, ("CopyObject", "b", "k")),
        ("PUT", "/b/k", {"partNumber": "1", "uploadId": "u"}, {}, ("UploadPart", "b", "k")),
        ("POST", "/b/k", {"uploads": ""}, {}, ("CreateMultipartUpload", "b", "k")),
        ("POST", "/b/k", {"uploadId": "u"}, {}, ("CompleteMultipartUpload", "b", "k")),
        ("DELETE", "/b/k", {"uploadId": "u"}, {}, ("AbortMultipartUpload", "b", "k")),
        ("HEAD", "/b/k", {}, {}, ("HeadObject", "b", "k")),
        ("DELETE", "/b/k", {}, {}, ("DeleteObject", "b", "k")),
        # sub-resources are their own operations, not the object's or bucket's plain ones
        ("GET", "/b/k", {"acl": ""}, {}, ("GetObjectAcl", "b", "k")),
        ("PUT", "/b/k", {"acl": ""}, {}, ("PutObjectAcl", "b", "k")),
        ("DELETE", "/b/k", {"tagging": ""}, {}, ("DeleteObjectTagging", "b", "k")),
        ("GET", "/b/k", {"attributes": ""}, {}, ("GetObjectAttributes", "b", "k")),
        ("GET", "/b/k", {"uploadId": "u"}, {}, ("ListParts", "b", "k")),
        ("GET", "/b", {"acl": ""}, {}, ("GetBucketAcl", "b", None)),
        ("GET", "/b", {"versions": ""}, {}, ("ListObjectVersions", "b", None)),
        ("DELETE", "/b", {"lifecycle": ""}, {}, ("DeleteBucketLifecycle", "b", None)),
    ],
)
def test_operation_inference(
    method: str,
    path: str,
    query: dict,
    headers: dict,  # type: ignore[type-arg]
    expected: tuple,
) -> None:  # type: ignore[type-arg]
    assert infer_operation(method, path, query, headers) == expected


def test_every_inferred_sub_resource_operation_is_a_real_s3_operation() -> None:
    from pytest_certstore.fault_proxy import _BUCKET_SUBRESOURCES, _OBJECT_SUBRESOURCES
    from pytest_certstore.faults import s3_operation_names

    named = {
        op
        for table in (_BUCKET_SUBRESOURCES, _OBJECT_SUBRESOURCES)
        for by in table.values()
        for op in by.values()
    }
    assert named - s3_operation_names() == set()


def test_a_get_object_rule_does_not_fire_on_get_object_acl(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    s3_fault_proxy.target.put("k.pdf", b"x")
    rule = s3_fault_proxy.inject("InternalError", "GetObject")
    s3_fault_proxy.client.get_object_acl(Bucket=s3_fault_proxy.bucket, Key="k.pdf")
    assert s3_fault_proxy.fired(rule) == 0
    assert s3_fault_proxy.attempts("GetObjectAcl") == 1


def test_virtual_hosted_requests_are_understood() -> None:
    assert infer_operation("GET", "/k.pdf", {}, {}, "bucket.s3.amazonaws.com") == (
        "GetObject",
        "bucket",
        "k.pdf",
    )


def _certstore_command() -> list[str]:
    script = Path(sys.executable).parent / "certstore"
    if script.exists():
        return [str(script)]
    found = shutil.which("certstore")
    return [found] if found else [sys.executable, "-c", "from certstore.cli import run; run()"]


def test_a_cli_subprocess_sees_the_proxy_faults(s3_fault_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "cert.pdf"
    source.write_bytes(b"%PDF-1.4 through the proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CERT"))}
    env.update(
        s3_fault_proxy.env(
            CERT_S3_ONLY="true", CERTSTORE_MEDIA_ROOT=str(tmp_path / "m"), AWS_S3_MAX_ATTEMPTS="1"
        )
    )
    s3_fault_proxy.inject("SlowDown", "PutObject", times=2)

    failed = subprocess.run(
        [*_certstore_command(), "put", "cert.pdf", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1, failed.stderr
    assert "SlowDown" in failed.stderr and "503" in failed.stderr

    assert [c.effects for c in s3_fault_proxy.calls] == [("SlowDown/503",)]

    s3_fault_proxy.clear()
    s3_fault_proxy.inject("SlowDown", "PutObject", times=2)
    env["AWS_S3_MAX_ATTEMPTS"] = "3"
    ok = subprocess.run(
        [*_certstore_command(), "put", "cert.pdf", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    puts = [c.effects for c in s3_fault_proxy.calls if c.operation == "PutObject"]
    assert puts == [("SlowDown/503",), ("SlowDown/503",), ()]
    assert s3_fault_proxy.target.get("certificates/cert.pdf") == b"%PDF-1.4 through the proxy"


def test_a_chunked_upload_is_forwarded_chunk_by_chunk(s3_fault_proxy) -> None:  # type: ignore[no-untyped-def]
    """A body of unknown length (Transfer-Encoding: chunked) reaches the endpoint intact."""
    import http.client
    from urllib.parse import urlsplit

    url = s3_fault_proxy.client.generate_presigned_url(
        "put_object", Params={"Bucket": s3_fault_proxy.bucket, "Key": "chunked.bin"}
    )
    parts = [os.urandom(100_000) for _ in range(7)]
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        conn.request("PUT", f"{split.path}?{split.query}", body=iter(parts), encode_chunked=True)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert s3_fault_proxy.target.get("chunked.bin") == b"".join(parts)
    assert [c.operation for c in s3_fault_proxy.calls] == ["PutObject"]
